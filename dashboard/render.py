"""The dashboard's pictures, drawn by :mod:`surgery_core.share.drawing` (the report's drawing) and encoded once:
Streamlit caching glue only.

Each picture is JPEG bytes cached with ``st.cache_data`` on everything it shows (run key, the boxes' cell, image,
class, settings, display size); the run and the panel are passed unhashed (``_run``, ``_panel``) since the run key and
the settings already name them. JPEG is a tenth of the PNG's bytes and many times faster to encode, which keeps
redraws quick.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from surgery_core.eval.protocols import Cell
from surgery_core.share import drawing


@st.cache_data(max_entries=2048, show_spinner=False)
def thumbnail(key: str, image: int, side: int, classes: tuple[int, ...], _run, map_method: str = "",
              map_class: int = -1) -> bytes:
    """JPEG thumbnail with the GT boxes of ``classes`` (all when empty), optionally over one method's heatmap."""
    rec = _run.dataset.images[image]
    sel = np.isin(rec.labels, classes) if classes else np.ones(len(rec.labels), bool)
    grid = _run.grid(map_method, image, map_class) if map_method else None
    if grid is not None:
        from surgery_core.eval.maps import working_map

        h, w = rec.height, rec.width
        s = side / max(h, w)
        grid = working_map(grid, max(1, round(w * s)), max(1, round(h * s)), None)
    return drawing.encode_jpg(drawing.thumbnail(_run.image(image), rec.xyxy[sel], side, grid))


@st.cache_data(max_entries=1024, show_spinner=False)
def overlay_jpg(key: str, cell: Cell, image: int, cls: int, iou: float, alpha: float, side: int, _run,
                _panel) -> bytes:
    """The seed's view of one cell (method, protocol, cut): heatmap overlay, GT (green), predictions (red dashed,
    labelled), point (``_panel``: the cell's :func:`dashboard.data.panel` at ``iou``)."""
    rec = _run.dataset.images[image]
    d = _panel.det
    return drawing.encode_jpg(drawing.method_view(
        _run.image(image), _panel.map01, rec.xyxy[rec.labels == cls], d.xyxy,
        drawing.det_labels(d.score, d.extra["iou"], d.extra["tp"]), _panel.point, _panel.pointing_hit, alpha,
        side))


@st.cache_data(max_entries=256, show_spinner=False)
def image_with_gt(key: str, image: int, cls: int, side: int, _run) -> bytes:
    """The plain image with every GT box: the selected class green, the other classes white (unlabelled)."""
    rec = _run.dataset.images[image]
    other = rec.labels != cls
    return drawing.encode_jpg(drawing.gt_view(_run.image(image), rec.xyxy[~other], rec.xyxy[other], side))


@st.cache_data(max_entries=8, show_spinner=False)
def colour_bar(width: int) -> bytes:
    """PNG of the heatmaps' jet scale (:func:`surgery_core.share.drawing.colour_strip`), ``width`` px wide."""
    return drawing.encode_png(drawing.colour_strip(width, tick_labels=("0 (map min)", "0.25", "0.5", "0.75",
                                                                    "1 (map max)")))


# ------------------------------------------------------------------------------------------ downloads (PNG)
# Built only when a download button is clicked (Streamlit calls the button's ``data`` then), and cached.
@st.cache_data(max_entries=64, show_spinner=False)
def method_panel_png(key: str, cell: Cell, image: int, cls: int, iou: float, alpha: float, side: int, title: str,
                     note: str, _run, _panel) -> bytes:
    """One Compare panel as drawn (heatmap, GT, boxes with labels, pointing point), with its title, its settings
    and, when a heatmap is drawn, the colour bar, as one PNG."""
    rec = _run.dataset.images[image]
    d = _panel.det
    picture = drawing.method_view(_run.image(image), _panel.map01, rec.xyxy[rec.labels == cls], d.xyxy,
                                  drawing.det_labels(d.score, d.extra["iou"], d.extra["tp"]), _panel.point,
                                  _panel.pointing_hit, alpha, side)
    return drawing.encode_png(drawing.panel_figure(
        picture, title, note, [(1.0, "1 = map max"), (0.5, "0.5"), (0.0, "0 = map min")],
        "min-max normalised similarity" if alpha > 0 else None), level=6)


@st.cache_data(max_entries=64, show_spinner=False)
def image_panel_png(key: str, image: int, cls: int, side: int, title: str, note: str, _run) -> bytes:
    """The Compare page's image panel (GT of the class green, other classes white) with its title, as one PNG."""
    rec = _run.dataset.images[image]
    other = rec.labels != cls
    picture = drawing.gt_view(_run.image(image), rec.xyxy[~other], rec.xyxy[other], side)
    return drawing.encode_png(drawing.panel_figure(picture, title, note, scale_title=None), level=6)


@st.cache_data(max_entries=16, show_spinner=False)
def comparison_png(key: str, cells: tuple[Cell, ...], image: int, cls: int, iou: float, alpha: float, _run) -> bytes:
    """The cross-method sample figure (the report's: image, then the method of every cell, one colour bar, a
    heading that says how the boxes were cut and matched), as one PNG. The cells share one protocol and cut (one
    Compare view)."""
    from surgery_core.share.report import comparison_figure

    settings = {(c.protocol, c.cut) for c in cells}
    if len(settings) != 1:
        raise ValueError(f"one comparison figure draws cells of one protocol and cut, not {[c.tag for c in cells]}")
    (proto, cut), = settings
    return drawing.encode_png(comparison_figure(_run, image, cls, iou, cut, tuple(c.method for c in cells), proto,
                                                alpha), level=6)
