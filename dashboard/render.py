"""Drawing the seed's views with OpenCV: jet heatmap overlays, GT boxes (green, solid), predicted boxes (red,
dashed) labelled with score, IoU and TP/FP, the pointing-game point; encoded once and cached.

Images are uint8 RGB; box coordinates are original-image pixels (xyxy, continuous). Drawing happens at a
display size (the image scaled so that its longer side is ``side`` px) so that labels stay legible on small
demo scenes and cheap on DIOR's 800 px images.
"""

from __future__ import annotations

import cv2
import numpy as np
import streamlit as st

GREEN = (30, 190, 60)
RED = (235, 35, 35)
WHITE = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def fit(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The image scaled so its longer side is ``side`` px, and the scale factor (display px per image px)."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp), s


def jet(map01: np.ndarray) -> np.ndarray:
    """A 0-1 map as uint8 RGB through the jet colormap (red high, blue low, as in the seed's figures)."""
    u8 = np.clip(np.nan_to_num(map01) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def blend(image: np.ndarray, map01: np.ndarray, alpha: float) -> np.ndarray:
    """The jet map (resized bilinearly to the image) over the image with opacity ``alpha``."""
    h, w = image.shape[:2]
    if map01.shape[:2] != (h, w):
        map01 = cv2.resize(map01.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(jet(map01), float(alpha), image, 1.0 - float(alpha), 0.0)


def _dashed_line(img, a, b, color, thickness, dash):
    length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
    if length < 1:
        return
    for s in np.arange(0.0, length, 2 * dash):
        t0, t1 = s / length, min(s + dash, length) / length
        p = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
        q = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
        cv2.line(img, p, q, color, thickness, cv2.LINE_AA)


def _label(img, text, x, y_top, y_bottom, color, scale):
    """A filled label above the box (below it when there is no room), kept inside the image; white text on
    dark fills, black text on light ones."""
    ink = WHITE if sum(color) < 600 else (0, 0, 0)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    h, w = img.shape[:2]
    x = int(min(max(0, x), max(0, w - tw - 4)))
    y = y_top - 3 if y_top - th - base - 3 >= 0 else min(h - base - 1, y_bottom + th + 3)
    cv2.rectangle(img, (x, y - th - 2), (x + tw + 3, y + base - 1), color, -1)
    cv2.putText(img, text, (x + 2, y - 1), FONT, scale, ink, 1, cv2.LINE_AA)


def draw_boxes(img: np.ndarray, xyxy: np.ndarray, scale: float, color, dashed: bool = False,
               labels: list[str] | None = None) -> np.ndarray:
    """Draw boxes (image px, scaled by ``scale`` to display px) in place; returns ``img``."""
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    font = max(0.36, min(0.62, min(h, w) / 650))
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, np.float64).reshape(-1, 4) * scale):
        p1 = (int(round(x1)), int(round(y1)))
        p2 = (max(p1[0], int(round(x2)) - 1), max(p1[1], int(round(y2)) - 1))
        if dashed:
            dash = max(4, 3 * thick)
            corners = [p1, (p2[0], p1[1]), p2, (p1[0], p2[1])]
            for a, b in zip(corners, corners[1:] + corners[:1]):
                _dashed_line(img, a, b, color, thick, dash)
        else:
            cv2.rectangle(img, p1, p2, color, thick, cv2.LINE_AA)
        if labels and k < len(labels) and labels[k]:
            _label(img, labels[k], p1[0], p1[1], p2[1], color, font)
    return img


def draw_point(img: np.ndarray, xy: tuple[float, float], scale: float, hit: bool | None) -> None:
    """The pointing-game point: a white-ringed cross (green ring on a hit, red on a miss, white without GT)."""
    x, y = int(round(xy[0] * scale)), int(round(xy[1] * scale))
    r = max(5, min(img.shape[:2]) // 32)
    ring = WHITE if hit is None else (GREEN if hit else RED)
    cv2.circle(img, (x, y), r, (0, 0, 0), 5, cv2.LINE_AA)
    cv2.circle(img, (x, y), r, ring, 3, cv2.LINE_AA)
    cv2.drawMarker(img, (x, y), (0, 0, 0), cv2.MARKER_CROSS, 2 * r - 4, 3, cv2.LINE_AA)
    cv2.drawMarker(img, (x, y), WHITE, cv2.MARKER_CROSS, 2 * r - 4, 1, cv2.LINE_AA)


def encode(img: np.ndarray, fmt: str = ".png") -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"{fmt} encoding failed")
    return buf.tobytes()


def det_labels(score: np.ndarray, iou: np.ndarray, tp: np.ndarray) -> list[str]:
    """``.62 .41 TP`` per predicted box: score, IoU with the best GT box of the class, TP or FP."""
    def short(v: float) -> str:
        return f"{v:.2f}".removeprefix("0")
    return [f"{short(s)} {short(i)} {'TP' if t else 'FP'}" for s, i, t in zip(score, iou, tp)]


# ------------------------------------------------------------------------------------------ cached pictures
@st.cache_data(max_entries=2048, show_spinner=False)
def thumbnail(key: str, image: int, side: int, classes: tuple[int, ...], _run, map_method: str = "",
              map_class: int = -1) -> bytes:
    """JPEG thumbnail with the GT boxes of ``classes`` (all when empty), optionally over one method's heatmap."""
    rec = _run.dataset.images[image]
    img, s = fit(_run.image(image), side)
    if map_method:
        from surgery_core.maps import working_map

        img = blend(img, working_map(_run.grid(map_method, image, map_class), img.shape[1], img.shape[0], None), 0.45)
    sel = np.isin(rec.labels, classes) if classes else np.ones(len(rec.labels), bool)
    draw_boxes(img, rec.xyxy[sel], s, GREEN)
    return encode(img, ".jpg")


@st.cache_data(max_entries=1024, show_spinner=False)
def overlay_jpg(key: str, image: int, cls: int, method: str, percentile: float, protocol: str, iou: float,
                alpha: float, side: int, _run, _panel) -> bytes:
    """The seed's view of one method: heatmap overlay, GT (green), predictions (red dashed, labelled), point."""
    rec = _run.dataset.images[image]
    img, s = fit(_run.image(image), side)
    img = blend(img, _panel.map01, alpha) if alpha > 0 else img.copy()
    draw_boxes(img, rec.xyxy[rec.labels == cls], s, GREEN)
    d = _panel.det
    draw_boxes(img, d.xyxy, s, RED, dashed=True, labels=det_labels(d.score, d.extra["iou"], d.extra["tp"]))
    draw_point(img, _panel.point, s, _panel.pointing_hit)
    return encode(img, ".jpg")  # a tenth of the PNG's bytes and 20x faster to encode: redraws stay quick


@st.cache_data(max_entries=256, show_spinner=False)
def image_with_gt(key: str, image: int, cls: int, side: int, _run) -> bytes:
    """The plain image with every GT box: the selected class green, the other classes white (unlabelled)."""
    rec = _run.dataset.images[image]
    img, s = fit(_run.image(image), side)
    other = rec.labels != cls
    draw_boxes(img, rec.xyxy[other], s, (245, 245, 245))
    draw_boxes(img, rec.xyxy[~other], s, GREEN)
    return encode(img, ".jpg")
