"""Drawing the seed's views with OpenCV, for the report, the shared HTML and the dashboard alike: jet heatmap
overlays, GT boxes (green, solid), predicted boxes (red, dashed) labelled with score, IoU and TP/FP, the
pointing-game point, and the encoders.

Images are uint8 RGB ``[H, W, 3]``; box coordinates are original-image pixels (xyxy, continuous). A view can be
drawn at a display size (the image scaled so that its longer side is ``side`` px; boxes and points scaled by the
same factor) so that labels stay legible on small demo scenes and cheap on DIOR's 800 px images; line widths and
label sizes follow the size of the picture they are drawn on.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

GREEN = (30, 190, 60)  # ground truth of the class
RED = (235, 35, 35)  # predicted boxes
WHITE = (255, 255, 255)
OTHER = (245, 245, 245)  # ground truth of the other classes (unlabelled)
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (20, 20, 20)  # text and outlines on white


# ------------------------------------------------------------------------------------------ building blocks
def fit(image: np.ndarray, side: int | None) -> tuple[np.ndarray, float]:
    """The image scaled so its longer side is ``side`` px (a copy), and the scale (display px per image px);
    ``side=None`` keeps the size."""
    h, w = image.shape[:2]
    if side is None or side == max(h, w):
        return image.copy(), 1.0
    s = side / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp), s


def jet(map01: np.ndarray) -> np.ndarray:
    """A 0-1 map as uint8 RGB through the jet colormap (red high, blue low, as in the seed's figures)."""
    u8 = np.clip(np.nan_to_num(map01) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, map01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The jet map (any size; resized bilinearly to the image) over the image with opacity ``alpha`` (a new
    image; ``alpha`` 0 gives a copy of the image)."""
    h, w = image.shape[:2]
    if map01.shape[:2] != (h, w):
        map01 = cv2.resize(np.asarray(map01, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
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


def _label_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above the baseline, height below it) of a label's filled box, px."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    return tw + 4, th + 3, base + 1


def _label_spot(img, text, x, y_top, y_bottom, scale, taken: list) -> tuple[int, int] | None:
    """Where a label's baseline goes: above the box, inside its top, below it, then further down the box, the
    first spot inside the image that covers no label in ``taken`` (rectangles x1, y1, x2, y2); None when every
    spot covers one."""
    w, up, down = _label_size(text, scale)
    h, wi = img.shape[:2]
    x = int(min(max(0, x), max(0, wi - w)))
    step = up + down
    candidates = [y_top - down - 1, y_top + up + 1, y_bottom + up + 2]
    candidates += list(range(y_top + up + 1 + step, max(y_bottom, y_top + up + 1 + step), step))
    for y in candidates:
        if y - up < 0 or y + down > h:
            continue
        rect = (x, y - up, x + w, y + down)
        if not any(r[0] < rect[2] and rect[0] < r[2] and r[1] < rect[3] and rect[1] < r[3] for r in taken):
            return x, y
    return None


def _label(img, text, x, y_top, y_bottom, color, scale, taken: list | None = None) -> bool:
    """A filled label above the box (inside its top, or below it, when there is no room or another label is
    there), kept inside the image; white text on dark fills, black on light ones. With ``taken`` (the label
    rectangles drawn so far, extended here) a label that would cover another is left out; returns whether it
    was drawn."""
    ink = WHITE if sum(color) < 600 else (0, 0, 0)
    spot = _label_spot(img, text, x, y_top, y_bottom, scale, taken if taken is not None else [])
    if spot is None:
        return False
    x, y = spot
    w, up, down = _label_size(text, scale)
    cv2.rectangle(img, (x, y - up), (x + w - 1, y + down - 1), color, -1)
    cv2.putText(img, text, (x + 2, y - 1), FONT, scale, ink, 1, cv2.LINE_AA)
    if taken is not None:
        taken.append((x, y - up, x + w, y + down))
    return True


def label_scale(img: np.ndarray) -> float:
    """The label font scale of a picture: about 1/55 of its shorter side in cap height, 0.36-0.62."""
    h, w = img.shape[:2]
    return max(0.36, min(0.62, min(h, w) / 650))


def draw_boxes(img: np.ndarray, xyxy: np.ndarray, color=GREEN, *, scale: float = 1.0, dashed: bool = False,
               labels: list[str] | None = None, avoid: list | None = None) -> np.ndarray:
    """Draw boxes (image px, times ``scale`` to ``img`` px) on ``img`` in place, solid or dashed, each with its
    label when given (in the given order, so the first boxes get the best spots; a label that would cover an
    earlier one, or a rectangle of ``avoid`` in ``img`` px, is moved or left out); returns ``img``."""
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    font = label_scale(img)
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4) * scale
    spots = []
    for x1, y1, x2, y2 in boxes:
        p1 = (int(round(x1)), int(round(y1)))
        p2 = (max(p1[0], int(round(x2)) - 1), max(p1[1], int(round(y2)) - 1))
        spots.append((p1, p2))
        if dashed:
            dash = max(4, 3 * thick)
            corners = [p1, (p2[0], p1[1]), p2, (p1[0], p2[1])]
            for a, b in zip(corners, corners[1:] + corners[:1]):
                _dashed_line(img, a, b, color, thick, dash)
        else:
            cv2.rectangle(img, p1, p2, color, thick, cv2.LINE_AA)
    taken: list = list(avoid or [])
    for k, (p1, p2) in enumerate(spots):  # labels after every box line, so that no line crosses a label
        if labels and k < len(labels) and labels[k]:
            _label(img, labels[k], p1[0], p1[1], p2[1], color, font, taken)
    return img


def draw_point(img: np.ndarray, xy: tuple[float, float], hit: bool | None, *, scale: float = 1.0) -> np.ndarray:
    """The pointing-game point (image px, times ``scale``) in place: a white cross in a ring, green on a hit, red
    on a miss, white without GT; returns ``img``."""
    x, y = int(round(xy[0] * scale)), int(round(xy[1] * scale))
    r = max(5, min(img.shape[:2]) // 32)
    ring = WHITE if hit is None else (GREEN if hit else RED)
    cv2.circle(img, (x, y), r, (0, 0, 0), 5, cv2.LINE_AA)
    cv2.circle(img, (x, y), r, ring, 3, cv2.LINE_AA)
    cv2.drawMarker(img, (x, y), (0, 0, 0), cv2.MARKER_CROSS, 2 * r - 4, 3, cv2.LINE_AA)
    cv2.drawMarker(img, (x, y), WHITE, cv2.MARKER_CROSS, 2 * r - 4, 1, cv2.LINE_AA)
    return img


def score_text(v: float) -> str:
    """A box score with enough digits to tell boxes apart: two decimals from 0.1 up, two significant digits
    below (open-protocol scores are a map mean times a class probability, often 0.001-0.05), then ``3.4e-05``."""
    v = float(v)
    if not np.isfinite(v):
        return "nan"
    if v == 0 or abs(v) >= 0.1:
        return f"{v:.2f}"
    if abs(v) >= 1e-4:
        return f"{v:.{_decimals(v)}f}"
    return f"{v:.1e}"


def _decimals(v: float) -> int:
    """Decimals that show two significant digits of ``v`` (0 < |v| < 1)."""
    return int(-np.floor(np.log10(abs(v)))) + 1


def det_labels(score, iou, tp, compact: bool = True) -> list[str]:
    """One label per predicted box: its score (:func:`score_text`), its IoU with the best GT box of the class,
    TP or FP (as matched at the view's IoU threshold). Compact ``s.62 IoU.41 TP`` (leading zeros dropped) for the
    dashboard's panels, else ``0.62 IoU 0.41 TP``."""
    if compact:
        return [f"s{score_text(s).removeprefix('0')} IoU{f'{i:.2f}'.removeprefix('0')} {'TP' if t else 'FP'}"
                for s, i, t in zip(score, iou, tp)]
    return [f"{score_text(s)} IoU {i:.2f} {'TP' if t else 'FP'}" for s, i, t in zip(score, iou, tp)]


# ------------------------------------------------------------------------------------------ the views
def gt_view(image: np.ndarray, gt_xyxy: np.ndarray, other_xyxy: np.ndarray | None = None,
            side: int | None = None) -> np.ndarray:
    """The plain image with the class's GT boxes (green) and, when given, the other classes' GT boxes (white,
    unlabelled, drawn first)."""
    img, s = fit(image, side)
    if other_xyxy is not None:
        draw_boxes(img, other_xyxy, OTHER, scale=s)
    return draw_boxes(img, gt_xyxy, GREEN, scale=s)


def method_view(image: np.ndarray, map01: np.ndarray | None, gt_xyxy: np.ndarray, det_xyxy: np.ndarray,
                labels: list[str] | None = None, point: tuple[float, float] | None = None,
                hit: bool | None = None, alpha: float = 0.5, side: int | None = None) -> np.ndarray:
    """The seed's view of one method: the heatmap over the image (jet, opacity ``alpha``; none when ``map01`` is
    None or ``alpha`` is 0), GT boxes green and solid, predictions red and dashed with their labels, and the
    pointing-game point when given."""
    img, s = fit(image, side)
    if map01 is not None and alpha > 0:
        img = overlay(img, map01, alpha)
    draw_boxes(img, gt_xyxy, GREEN, scale=s)
    avoid = []
    if point is not None:  # no label over the pointing-game ring
        x, y, r = point[0] * s, point[1] * s, max(5, min(img.shape[:2]) // 32) + 3
        avoid.append((x - r, y - r, x + r, y + r))
    draw_boxes(img, det_xyxy, RED, scale=s, dashed=True, labels=labels, avoid=avoid)
    if point is not None:
        draw_point(img, point, hit, scale=s)
    return img


def thumbnail(image: np.ndarray, gt_xyxy: np.ndarray, side: int, map01: np.ndarray | None = None,
              alpha: float = 0.45) -> np.ndarray:
    """A small picture: the GT boxes (green), over the heatmap when ``map01`` is given."""
    img, s = fit(image, side)
    if map01 is not None:
        img = overlay(img, map01, alpha)
    return draw_boxes(img, gt_xyxy, GREEN, scale=s)


def colour_strip(width: int, title: str = "heatmap value (each map min-max normalised: 0 = its min, 1 = its max)",
               ticks: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0), tick_labels: tuple[str, ...] | None = None,
               strip: int = 14, font: float = 0.42) -> np.ndarray:
    """The jet scale of :func:`jet` as a horizontal picture ``width`` px wide (uint8 RGB, white ground): a title
    line, the colour strip from 0 (left) to 1 (right), and a tick with its label at each of ``ticks`` (0-1
    positions; labels default to the values). Under a row of panels (the dashboard); :func:`colour_bar` is the
    vertical one beside a figure's panels."""
    width = max(int(width), 60)
    tick_labels = tick_labels or tuple(f"{t:g}" for t in ticks)
    (_, th), base = cv2.getTextSize("0", FONT, font, 1)
    line = th + base + 4
    pad = 6
    top = line if title else 0
    img = np.full((top + strip + 4 + line, width, 3), 255, np.uint8)
    if title:
        cv2.putText(img, title[: max(10, width // 6)], (pad, th + 2), FONT, font, INK, 1, cv2.LINE_AA)
    x0, x1 = pad, width - pad
    ramp = np.linspace(0.0, 1.0, x1 - x0, dtype=np.float32)[None, :].repeat(strip, 0)
    img[top:top + strip, x0:x1] = jet(ramp)
    cv2.rectangle(img, (x0, top), (x1 - 1, top + strip - 1), INK, 1)
    for t, text in zip(ticks, tick_labels):
        x = int(round(x0 + float(t) * (x1 - 1 - x0)))
        cv2.line(img, (x, top + strip), (x, top + strip + 3), INK, 1)
        (tw, _), _ = cv2.getTextSize(text, FONT, font, 1)
        tx = int(min(max(0, x - tw // 2), width - tw - 1))
        cv2.putText(img, text, (tx, top + strip + 4 + th + 1), FONT, font, INK, 1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------------------------------ report figures
PANEL_MIN = 448  # px: the longer side of each panel of a report figure, at least (224 px demo scenes: 2x)
TITLE_SCALE = 0.55  # Hershey font scale of figure titles: about 10 px per character, 15 px capitals


def _wrap(text: str, width: int, scale: float, thick: int = 1) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` px (a word longer than that gets its own
    line, cut at the last character that fits)."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if cv2.getTextSize(cand, FONT, scale, thick)[0][0] <= width or not line:
                line = cand
            else:
                lines.append(line)
                line = word
            while cv2.getTextSize(line, FONT, scale, thick)[0][0] > width and len(line) > 1:
                cut = len(line) - 1
                while cut > 1 and cv2.getTextSize(line[:cut], FONT, scale, thick)[0][0] > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def title_bar(width: int, text: str, scale: float = TITLE_SCALE, bold: bool = False) -> np.ndarray:
    """A white bar holding ``text`` whole, wrapped onto as many lines as ``width`` px needs."""
    thick = 2 if bold else 1
    lines = _wrap(text, width - 12, scale, thick)
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, thick)
    step = th + base + 6
    bar = np.full((step * len(lines) + 8, width, 3), 255, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(bar, line, (6, 6 + th + k * step), FONT, scale, INK, thick, cv2.LINE_AA)
    return bar


def colour_bar(height: int, ticks: list[tuple[float, str]] | None = None, title: str = "heatmap (jet)",
               scale: float = 0.45) -> np.ndarray:
    """The jet scale of the heatmap overlays as a vertical bar ``height`` px tall: 1 at the top, 0 at the bottom,
    ``ticks`` (position 0-1, label) written beside it (default 0, 0.5, 1) and ``title`` along its side."""
    ticks = ticks if ticks is not None else [(1.0, "1"), (0.5, "0.5"), (0.0, "0")]
    pad = 10
    strip_w = 18
    label_w = max([cv2.getTextSize(t, FONT, scale, 1)[0][0] for _, t in ticks] + [0])
    (_, th), base = cv2.getTextSize("0", FONT, scale, 1)
    title_h = th + base + 8
    width = pad + strip_w + 6 + label_w + 6 + title_h
    out = np.full((height, width, 3), 255, np.uint8)
    top, bottom = pad, height - pad - 1
    ramp = np.linspace(1.0, 0.0, bottom - top + 1, dtype=np.float32)[:, None].repeat(strip_w, 1)
    out[top:bottom + 1, pad:pad + strip_w] = jet(ramp)
    cv2.rectangle(out, (pad, top), (pad + strip_w - 1, bottom), INK, 1)
    for pos, text in ticks:
        y = int(round(bottom - pos * (bottom - top)))
        cv2.line(out, (pad + strip_w, y), (pad + strip_w + 4, y), INK, 1)
        ty = int(min(max(y + th // 2, th + 1), height - base - 1))
        cv2.putText(out, text, (pad + strip_w + 6, ty), FONT, scale, INK, 1, cv2.LINE_AA)
    # the title along the bar: drawn horizontally on its own canvas, turned a quarter counter-clockwise
    lines = _wrap(title, bottom - top, scale)[:2]
    canvas = np.full((title_h * len(lines), bottom - top + 1, 3), 255, np.uint8)
    for k, line in enumerate(lines):
        tw = cv2.getTextSize(line, FONT, scale, 1)[0][0]
        cv2.putText(canvas, line, ((canvas.shape[1] - tw) // 2, k * title_h + th + 3), FONT, scale, INK, 1,
                    cv2.LINE_AA)
    turned = cv2.rotate(canvas, cv2.ROTATE_90_COUNTERCLOCKWISE)
    x0 = width - title_h - 2
    if turned.shape[1] > title_h:  # two lines: widen the bar to hold them
        out = np.hstack([out, np.full((height, turned.shape[1] - title_h, 3), 255, np.uint8)])
    out[top:top + turned.shape[0], x0:x0 + turned.shape[1]] = turned
    return out


def _pad_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    out = np.full((h, w, 3), 255, np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out


def _join(cells: list[np.ndarray], gap: int, axis: int) -> np.ndarray:
    """Cells joined along ``axis`` (1: side by side, top-aligned; 0: one under another, left-aligned) on white,
    ``gap`` px apart."""
    across = max(c.shape[1 - axis] for c in cells)
    parts = []
    for k, c in enumerate(cells):
        if k:
            parts.append(np.full((across, gap, 3) if axis else (gap, across, 3), 255, np.uint8))
        parts.append(_pad_to(c, across, c.shape[1]) if axis else _pad_to(c, c.shape[0], across))
    return np.concatenate(parts, axis=axis)


def _row(cells: list[np.ndarray], gap: int = 10) -> np.ndarray:
    return _join(cells, gap, 1)


def _stack(rows: list[np.ndarray], gap: int = 10) -> np.ndarray:
    return _join(rows, gap, 0)


def panel_side(image: np.ndarray) -> int:
    """Display side of report-figure panels: the image's own longer side, at least :data:`PANEL_MIN` px."""
    return max(PANEL_MIN, max(image.shape[:2]))


def _text_scale(side: int) -> float:
    """Title font scale for panels of ``side`` px: the same share of the panel from 448 px (0.55) up to 0.9."""
    return min(0.9, TITLE_SCALE * side / PANEL_MIN)


def three_column(image: np.ndarray, gt_xyxy: np.ndarray, map01: np.ndarray, det_xyxy: np.ndarray,
                 det_labels: list[str] | None = None, titles: tuple[str, str, str] | None = None,
                 alpha: float = 0.5, side: int | None = None, scale_ticks: list[tuple[float, str]] | None = None,
                 scale_title: str = "heatmap: min-max normalised similarity", heading: str | None = None,
                 image_column: bool = True) -> np.ndarray:
    """The seed's figure: image + GT (green solid) | heatmap overlay (jet) with its colour bar | GT (green) vs
    predictions (red dashed, labelled), side by side, each under its title (wrapped, never cut).

    side: display side of each panel in px (default :func:`panel_side`: the image's own, at least 448 px).
    scale_ticks: the colour bar's (position 0-1, label) ticks. heading: an optional line above everything.
    image_column False: the last two columns only (a report that shows the image once, above its methods)."""
    side = side or panel_side(image)
    ts = _text_scale(side)
    empty = np.zeros((0, 4))
    left = gt_view(image, gt_xyxy, side=side)
    mid = method_view(image, map01, empty, empty, alpha=alpha, side=side)
    right = method_view(image, None, gt_xyxy, det_xyxy, det_labels, side=side)
    titles = titles or ("image + ground truth", "heatmap (jet)", "GT (green) vs predictions (red, dashed)")
    bar = colour_bar(mid.shape[0], scale_ticks, scale_title, scale=ts * 0.82)
    heads = [title_bar(c.shape[1], t, ts) for t, c in zip(titles, (left, mid, right))]
    head_h = max(h.shape[0] for h in heads)
    cols = [np.vstack([_pad_to(h, head_h, c.shape[1]), c]) for h, c in zip(heads, (left, mid, right))]
    cols[1] = np.hstack([cols[1], np.vstack([np.full((head_h, bar.shape[1], 3), 255, np.uint8), bar])])
    fig = _row(cols if image_column else cols[1:])
    if heading:
        fig = _stack([title_bar(fig.shape[1], heading, ts, bold=True), fig], gap=0)
    return fig


def comparison(image: np.ndarray, gt_xyxy: np.ndarray, other_xyxy: np.ndarray | None, first_title: str,
               panels: list[dict], heading: str = "", side: int | None = None, alpha: float = 0.5,
               scale_ticks: list[tuple[float, str]] | None = None,
               scale_title: str = "each heatmap: min-max normalised similarity", max_cols: int = 5) -> np.ndarray:
    """One sample, every method at once, as on the dashboard's Compare page: the image with its GT boxes (the
    class green, other classes white), then per method the heatmap overlay with GT (green), predictions (red,
    dashed, labelled) and the pointing-game point; one colour bar for all maps; a heading above.

    panels: per method ``{"title", "map01", "det_xyxy", "labels", "point", "hit"}`` (any number of them).
    Panels fill rows of at most ``max_cols``, rows as even as possible.
    """
    side = side or panel_side(image)
    ts = _text_scale(side)
    cells = [(first_title, gt_view(image, gt_xyxy, other_xyxy, side=side))]
    for p in panels:
        cells.append((p["title"], method_view(image, p["map01"], gt_xyxy, p["det_xyxy"], p.get("labels"),
                                              p.get("point"), p.get("hit"), alpha, side)))
    n = len(cells)
    rows_n = -(-n // max_cols)
    ncols = -(-n // rows_n)
    width = max(c.shape[1] for _, c in cells)
    heads = [title_bar(width, t, ts) for t, _ in cells]
    head_h = max(h.shape[0] for h in heads)
    tiles = [np.vstack([_pad_to(h, head_h, width), _pad_to(c, c.shape[0], width)]) for h, (_, c) in zip(heads, cells)]
    rows = [_row(tiles[r * ncols:(r + 1) * ncols]) for r in range(rows_n)]
    body = _stack(rows)
    bar = colour_bar(max(c.shape[0] for _, c in cells), scale_ticks, scale_title, scale=ts * 0.82)
    body = _row([body, np.vstack([np.full((head_h, bar.shape[1], 3), 255, np.uint8), bar])])
    if heading:
        body = _stack([title_bar(body.shape[1], heading, ts, bold=True), body], gap=0)
    return body


def panel_figure(picture: np.ndarray, title: str, note: str = "", scale_ticks: list[tuple[float, str]] | None = None,
                 scale_title: str | None = "heatmap: min-max normalised similarity") -> np.ndarray:
    """One panel as drawn on a page, as one picture: its title (bold) and note above, the picture, and the
    colour bar beside it (``scale_title`` None: no heatmap drawn, no bar)."""
    ts = _text_scale(max(picture.shape[:2]))
    body = picture
    if scale_title is not None:
        body = _row([picture, colour_bar(picture.shape[0], scale_ticks, scale_title, scale=ts * 0.82)])
    heads = [title_bar(body.shape[1], title, ts, bold=True)] + ([title_bar(body.shape[1], note, ts * 0.85)]
                                                               if note else [])
    return _stack([*heads, body], gap=0)


# ------------------------------------------------------------------------------------------ encoding
def encode_png(image_rgb: np.ndarray, level: int = 1) -> bytes:
    """PNG at zlib ``level`` (1: fast; 6: about a third smaller on textured scenes, for files that are kept)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


#: libwebp's effort (0 fastest - 6 smallest). On the report's figures (heatmap | boxes panels, quality 80), effort 2
#: encodes 2.3x faster than OpenCV's fixed effort 4 for 3% more bytes at the same PSNR (33.7 dB): measured on the
#: demo run's 24 figures, 14.8 against 33.6 ms each on one core.
WEBP_METHOD = 2


def encode_webp(image_rgb: np.ndarray, quality: int = 80) -> bytes:
    """Lossy WebP at ``quality``: about half a JPEG's bytes for the same look on heatmaps over aerial scenes."""
    from PIL import Image

    buf = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(image_rgb)).save(buf, "WEBP", quality=quality, method=WEBP_METHOD)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"WebP encoding failed: {exc}") from None
    return buf.getvalue()


def encode_jpg(image_rgb: np.ndarray, quality: int = 92) -> bytes:
    """JPEG at ``quality``: a tenth of the PNG's bytes and many times faster to encode (the dashboard's views)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
