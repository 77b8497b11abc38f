"""Data layer: classes, ground truth (Detections), dataset readers, image decoding. numpy/cv2, never torch."""
