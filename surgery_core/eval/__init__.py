"""Evaluation layer: working maps, boxes, matching, AP, heatmap quality, external scoring. Pure numpy (cv2 where it cuts boxes), never torch."""
