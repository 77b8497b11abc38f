"""From a raw similarity grid to the maps that boxes and quality figures are cut from.

A *grid* is the raw patch-text similarity of one image, ``[grid_h, grid_w]`` (one class) or
``[num_classes, grid_h, grid_w]``, in raw similarity units (cosine or feature-surgery values), before any
normalisation; 7x7 for ViT-B/32 at 224.

The *working map* is the grid min-max normalised per class to 0-1 and then upsampled bilinearly to the
*working resolution*: ``box_resolution x box_resolution`` pixels (224 by default, the seed's), or the
original image's own ``width x height`` when ``box_resolution`` is None. Boxes are cut from the working
map and scaled to original-image pixels: working pixel ``(row i, column j)`` covers
``[j * sx, (j + 1) * sx) x [i * sy, (i + 1) * sy)`` of the original image, with ``sx = image_w / working_w``
and ``sy = image_h / working_h`` (see :func:`image_scale`).

Order of operations (docs/DESIGN.md section 3): normalise the grid, then upsample. Half-pixel-centre
bilinear interpolation is a convex combination of grid cells, so the map stays within 0-1; its maximum can
be a little under 1 because no working pixel centre need fall exactly on a cell centre.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The seed's working resolution (it resized every map to 224 x 224).
DEFAULT_BOX_RESOLUTION = 224


def normalize(grid: np.ndarray) -> np.ndarray:
    """Min-max normalise each class of a grid over its cells, to 0-1.

    grid: ``[..., grid_h, grid_w]`` raw similarity. Returns float32 of the same shape; a class whose cells
    are all equal (or not all finite) becomes all zeros rather than NaN.
    """
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim < 2:
        raise ValueError(f"grid must be at least 2-D [..., grid_h, grid_w], got shape {g.shape}")
    lo = g.min(axis=(-2, -1), keepdims=True)
    span = g.max(axis=(-2, -1), keepdims=True) - lo
    # A flat class carries no spatial information: zeros say that without inventing a peak.
    ok = np.isfinite(span) & (span > 0)
    out = np.where(ok, (g - lo) / np.where(ok, span, 1.0), 0.0)
    return out.astype(np.float32)


def upsample(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear upsampling with half-pixel centres to ``height x width`` pixels.

    grid: ``[grid_h, grid_w]`` or ``[num_classes, grid_h, grid_w]``, any units; returns float32
    ``[height, width]`` or ``[num_classes, height, width]`` in the same units. This is
    ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``, which equals
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)``:
    output pixel ``i`` samples the grid at ``(i + 0.5) * grid_h / height - 0.5``, clamped to the edge cells.
    """
    g = np.asarray(grid, dtype=np.float32)
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise ValueError(f"upsample size must be positive, got {width}x{height}")
    if g.ndim == 2:
        return cv2.resize(g, (width, height), interpolation=cv2.INTER_LINEAR)
    if g.ndim != 3:
        raise ValueError(f"grid must be [grid_h, grid_w] or [classes, grid_h, grid_w], got shape {g.shape}")
    # One class at a time: OpenCV's multi-channel path rounds differently in the last bit, and a class's
    # map (hence its percentile threshold) must not depend on how many classes were upsampled with it.
    out = np.empty((g.shape[0], height, width), np.float32)
    for c in range(g.shape[0]):
        out[c] = cv2.resize(g[c], (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def working_size(image_w: int, image_h: int, box_resolution: int | None = DEFAULT_BOX_RESOLUTION
                 ) -> tuple[int, int]:
    """Size ``(width, height)`` in pixels of the working map for an image of ``image_w x image_h`` pixels."""
    if box_resolution is None:
        return int(image_w), int(image_h)
    return int(box_resolution), int(box_resolution)


def image_scale(image_w: int, image_h: int, box_resolution: int | None = DEFAULT_BOX_RESOLUTION
                ) -> tuple[float, float]:
    """Original-image pixels per working-map pixel, ``(sx, sy)``; elementwise when the sizes are arrays (the images
    of a chunk of maps)."""
    if np.ndim(image_w) or np.ndim(image_h):  # working_size's int() takes one size
        ww, wh = (image_w, image_h) if box_resolution is None else (int(box_resolution),) * 2
    else:
        ww, wh = working_size(image_w, image_h, box_resolution)
    return image_w / ww, image_h / wh


def working_map(grid: np.ndarray, image_w: int, image_h: int,
                box_resolution: int | None = DEFAULT_BOX_RESOLUTION, *, normalized: bool = False) -> np.ndarray:
    """The normalised (0-1) map boxes are cut from: :func:`normalize` then :func:`upsample` to the working size.

    grid: raw ``[grid_h, grid_w]`` (or ``[num_classes, grid_h, grid_w]``); image_w, image_h: the original
    image's size in pixels. Returns float32 ``[working_h, working_w]`` (or with a leading class axis).
    normalized: ``grid`` is :func:`normalize`'s output already (normalising every class of an image at once
    gives each class the same values as normalising it alone).
    """
    return upsample(grid if normalized else normalize(grid), *working_size(image_w, image_h, box_resolution))


def raw_working_map(grid: np.ndarray, image_w: int, image_h: int,
                    box_resolution: int | None = DEFAULT_BOX_RESOLUTION) -> np.ndarray:
    """The raw (un-normalised) similarity upsampled to the working size, float32, raw similarity units."""
    return upsample(grid, *working_size(image_w, image_h, box_resolution))


def pixel_centres(n: int, scale: float) -> np.ndarray:
    """Centres, in original-image pixels, of ``n`` working pixels each ``scale`` original pixels wide."""
    return (np.arange(n, dtype=np.float64) + 0.5) * scale


def box_mask(xyxy: np.ndarray, image_w: int, image_h: int,
             box_resolution: int | None = DEFAULT_BOX_RESOLUTION) -> np.ndarray:
    """Working-map pixels inside the union of boxes, bool ``[working_h, working_w]``.

    xyxy: ``[n, 4]`` original-image pixels. A working pixel is inside a box when its centre lies in the
    half-open box ``[x1, x2) x [y1, y2)`` (so adjacent boxes never share a pixel). A box too small to
    contain any pixel centre still claims the one pixel that contains its own centre, so every box
    contributes at least one pixel.
    """
    ww, wh = working_size(image_w, image_h, box_resolution)
    sx, sy = image_scale(image_w, image_h, box_resolution)
    mask = np.zeros((wh, ww), bool)
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float64).reshape(-1, 4):
        c0, c1 = _centre_span(x1, x2, sx, ww)
        r0, r1 = _centre_span(y1, y2, sy, wh)
        mask[r0:r1, c0:c1] = True
    return mask


def _centre_span(lo: float, hi: float, scale: float, n: int) -> tuple[int, int]:
    """Working pixels ``[first, last)`` along one axis whose centres fall in ``[lo, hi)`` (original px)."""
    centres = pixel_centres(n, scale)
    first, last = np.searchsorted(centres, [lo, hi], side="left").tolist()
    if last <= first:
        j = min(n - 1, max(0, int(np.floor((lo + hi) / 2 / scale))))
        return j, j + 1
    return first, last
