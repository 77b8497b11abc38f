"""Drawing the seed's views: heatmap overlays (jet), GT boxes (green, solid), predictions (red, dashed).

All images are uint8 RGB ``[H, W, 3]``; boxes are original-image pixels (xyxy, continuous).
"""

from __future__ import annotations

import cv2
import numpy as np

GREEN = (40, 200, 60)
RED = (230, 40, 40)


def jet(map01: np.ndarray) -> np.ndarray:
    """0-1 map -> uint8 RGB with the jet colormap (red = high, blue = low, as in the seed's figures)."""
    u8 = np.clip(np.nan_to_num(map01) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, map01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a 0-1 map (any size; resized bilinearly to the image) over the image with opacity ``alpha``."""
    h, w = image.shape[:2]
    if map01.shape != (h, w):
        map01 = cv2.resize(map01.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(jet(map01), float(alpha), image, 1.0 - float(alpha), 0.0)


def _dashed_rect(img, p1, p2, color, thickness, dash):
    x1, y1 = p1
    x2, y2 = p2
    for (a, b) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = int(np.hypot(b[0] - a[0], b[1] - a[1]))
        for s in range(0, max(length, 1), 2 * dash):
            t0, t1 = s / max(length, 1), min(s + dash, length) / max(length, 1)
            q0 = (int(round(a[0] + (b[0] - a[0]) * t0)), int(round(a[1] + (b[1] - a[1]) * t0)))
            q1 = (int(round(a[0] + (b[0] - a[0]) * t1)), int(round(a[1] + (b[1] - a[1]) * t1)))
            cv2.line(img, q0, q1, color, thickness, cv2.LINE_AA)


def draw_boxes(image: np.ndarray, xyxy: np.ndarray, color=GREEN, dashed: bool = False,
               labels: list[str] | None = None, thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` with boxes drawn (solid or dashed) and optional text labels above them."""
    out = image.copy()
    h, w = out.shape[:2]
    thickness = thickness or max(1, round(min(h, w) / 300))
    scale = max(0.35, min(h, w) / 900)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, np.float64).reshape(-1, 4)):
        p1 = (int(round(x1)), int(round(y1)))
        p2 = (int(round(x2)) - 1, int(round(y2)) - 1)
        if dashed:
            _dashed_rect(out, p1, p2, color, thickness, dash=max(4, thickness * 4))
        else:
            cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        if labels and k < len(labels) and labels[k]:
            (tw, th), _ = cv2.getTextSize(labels[k], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = p1[1] - 3 if p1[1] - th - 4 > 0 else p2[1] + th + 3
            cv2.rectangle(out, (p1[0], ty - th - 2), (p1[0] + tw + 2, ty + 2), color, -1)
            cv2.putText(out, labels[k], (p1[0] + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)
    return out


def caption_bar(width: int, text: str, height: int = 22) -> np.ndarray:
    bar = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(bar, text[: max(10, width // 7)], (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 20, 20), 1,
                cv2.LINE_AA)
    return bar


def three_column(image: np.ndarray, gt_xyxy: np.ndarray, map01: np.ndarray, det_xyxy: np.ndarray,
                 det_labels: list[str] | None = None, titles: tuple[str, str, str] | None = None,
                 alpha: float = 0.5) -> np.ndarray:
    """The seed's figure: image + GT (green solid) | heatmap overlay (jet) | GT (green) vs predictions (red
    dashed), side by side, each with a title bar."""
    left = draw_boxes(image, gt_xyxy, GREEN)
    mid = overlay(image, map01, alpha)
    right = draw_boxes(draw_boxes(image, gt_xyxy, GREEN), det_xyxy, RED, dashed=True, labels=det_labels)
    titles = titles or ("image + ground truth", "heatmap (jet)", "GT (green) vs predictions (red, dashed)")
    cols = [np.vstack([caption_bar(image.shape[1], t), c]) for t, c in zip(titles, (left, mid, right))]
    gap = np.full((cols[0].shape[0], 6, 3), 255, np.uint8)
    return np.hstack([cols[0], gap, cols[1], gap, cols[2]])


def encode_png(image_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
