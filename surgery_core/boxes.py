"""Boxes cut from heatmaps: threshold, morphology, connected components, one scored box per component.

Per image and class (DESIGN section 4):

1. working map: the raw grid min-max normalised to 0-1 and upsampled to the working resolution
   (:func:`surgery_core.maps.working_map`; ``box_resolution`` pixels square, or the image's own size);
2. threshold: ``mask = map >= np.percentile(map, p)`` with numpy's default (linear) interpolation over all
   working-map pixels;
3. morphology: close then open with a ``morph_kernel`` x ``morph_kernel`` rectangle (1 = off), which fills
   one-pixel gaps and then removes specks smaller than the kernel;
4. connected components (``connectivity`` 8 or 4), one box per component: a component spanning working
   columns ``a..b`` and rows ``c..d`` becomes ``x = [a, b + 1) * sx``, ``y = [c, d + 1) * sy`` in
   original-image pixels (continuous xyxy, no +1), ``sx = image_w / working_w``;
5. score: the mean (or max) of the 0-1 working map over the component's pixels, optionally times the
   image-level class probability;
6. optional ``min_area`` filter (original-image px^2) and NMS (``torchvision.ops.nms``, per image and class).

Sweeps over many percentiles reuse one working map: :func:`boxes_from_grid_sweep`, :func:`sweep_detections`.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Literal, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .detections import Detections
from .maps import DEFAULT_BOX_RESOLUTION, image_scale, working_map

#: Percentiles of the seed's quality table plus the neighbours a user is likely to drag to.
DEFAULT_SWEEP_PERCENTILES: tuple[float, ...] = (50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0)


class BoxParams(BaseModel):
    """How boxes are cut from a heatmap; part of the run configuration, so frozen and strict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percentile: float = Field(90.0, ge=0.0, le=100.0,
                              description="threshold at this percentile of the working map (seed: 90; "
                                          "its analysis recommends 75)")
    morph_kernel: int = Field(3, ge=1, description="odd side in working pixels of the close-then-open "
                                                   "rectangle; 1 turns morphology off")
    connectivity: Literal[4, 8] = Field(8, description="pixel connectivity of components")
    score: Literal["mean", "max"] = Field("mean", description="box score: mean or max of the 0-1 working "
                                                              "map over the component")
    class_prob_weight: bool = Field(False, description="multiply each score by the image-level class "
                                                       "probability")
    min_area: float = Field(0.0, ge=0.0, description="drop boxes smaller than this, original-image px^2")
    nms_iou: float | None = Field(None, ge=0.0, le=1.0, description="NMS IoU per image and class; None = off")
    box_resolution: int | None = Field(DEFAULT_BOX_RESOLUTION, ge=1,
                                       description="working map side in pixels; None = the image's own size")

    @field_validator("morph_kernel")
    @classmethod
    def _odd_kernel(cls, v: int) -> int:
        # An even kernel has no centre pixel, so close/open would shift boxes by half a pixel.
        if v % 2 == 0:
            raise ValueError(f"morph_kernel must be odd, got {v}")
        return v


BoxList = tuple[np.ndarray, np.ndarray]
"""``(xyxy float64 [n, 4] original-image pixels, score float64 [n])``."""


def _empty_boxes() -> BoxList:
    return np.zeros((0, 4), np.float64), np.zeros(0, np.float64)


# --------------------------------------------------------------------------------------------- thresholds

def percentile_thresholds(wmap: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Thresholds equal, bit for bit, to ``np.percentile(wmap, p)`` for each scalar ``p`` (0-100).

    wmap: float32 working map (any shape, NaN-free). Returns float32 ``[len(percentiles)]`` in the map's
    units. One partial sort serves every percentile; the interpolation replays numpy's scalar-``q`` path
    (virtual index ``(n - 1) * p / 100``, float32 two-sided lerp), which the tests compare against numpy.
    """
    flat = np.asarray(wmap, dtype=np.float32).ravel()
    n = flat.size
    if n == 0:
        raise ValueError("cannot take a percentile of an empty map")
    prev_idx, next_idx, gammas = [], [], []
    for p in percentiles:
        p = float(p)
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0-100, got {p}")
        v = (n - 1) * float(np.true_divide(p, 100))
        lo = int(np.floor(v))
        if v >= n - 1:
            lo_i = hi_i = n - 1
        else:
            lo_i, hi_i = lo, lo + 1
        prev_idx.append(lo_i)
        next_idx.append(hi_i)
        gammas.append(v - lo)
    kth = np.unique(np.array(prev_idx + next_idx, dtype=np.intp))
    part = np.partition(flat, kth)
    out = np.empty(len(gammas), np.float32)
    for i, (lo_i, hi_i, t) in enumerate(zip(prev_idx, next_idx, gammas)):
        a, b = part[lo_i], part[hi_i]
        d = b - a
        # numpy's _lerp: a + d*t below t = 0.5, b - d*(1-t) from 0.5 up, in the map's float32.
        out[i] = b - d * np.float32(1.0 - t) if t >= 0.5 else a + d * np.float32(t)
    return out


# ------------------------------------------------------------------------------------------ one map

def close_open(mask: np.ndarray, kernel: int) -> np.ndarray:
    """Morphological close then open of a uint8 0/1 mask with a ``kernel`` x ``kernel`` rectangle.

    Equals ``morphologyEx(CLOSE)`` then ``morphologyEx(OPEN)`` with OpenCV's default borders; written as
    dilate, erode with the doubled kernel (two erosions by a rectangle are one by the summed rectangle),
    dilate, which saves one pass.
    """
    if kernel <= 1:
        return mask
    k = np.ones((kernel, kernel), np.uint8)
    k2 = np.ones((2 * kernel - 1, 2 * kernel - 1), np.uint8)
    return cv2.dilate(cv2.erode(cv2.dilate(mask, k), k2), k)


def _component_scores(wmap: np.ndarray, labels: np.ndarray, stats: np.ndarray, ids: np.ndarray,
                      rule: str) -> np.ndarray:
    """Mean or max of ``wmap`` over each labelled component ``ids`` (rows of ``stats``), float64."""
    out = np.empty(len(ids), np.float64)
    for i, k in enumerate(ids):
        x, y, w, h = stats[k, :4]
        sel = cv2.compare(labels[y:y + h, x:x + w], int(k), cv2.CMP_EQ)
        sub = wmap[y:y + h, x:x + w]
        out[i] = cv2.mean(sub, mask=sel)[0] if rule == "mean" else cv2.minMaxLoc(sub, mask=sel)[1]
    return out


def boxes_at_threshold(wmap: np.ndarray, threshold: float, image_w: int, image_h: int, params: BoxParams,
                       class_prob: float = 1.0) -> BoxList:
    """Boxes from one 0-1 working map at one threshold (map units), in original-image pixels.

    wmap: float32 ``[working_h, working_w]`` (see :func:`surgery_core.maps.working_map`); threshold: keep
    pixels ``>= threshold``; ``params.percentile`` is not used here.
    """
    mask = np.ascontiguousarray(wmap >= threshold).view(np.uint8)
    mask = close_open(mask, params.morph_kernel)
    # 16-bit labels are faster; they overflow only past 65535 components, impossible below 2 * 65535 px.
    ltype = cv2.CV_16U if mask.size < 131000 else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=params.connectivity, ltype=ltype)
    if n <= 1:
        return _empty_boxes()
    sx, sy = image_scale(image_w, image_h, params.box_resolution)
    st = stats[1:].astype(np.float64)
    xyxy = np.empty((n - 1, 4), np.float64)
    xyxy[:, 0] = st[:, 0] * sx
    xyxy[:, 1] = st[:, 1] * sy
    xyxy[:, 2] = (st[:, 0] + st[:, 2]) * sx
    xyxy[:, 3] = (st[:, 1] + st[:, 3]) * sy
    ids = np.arange(1, n)
    if params.min_area > 0:
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        keep = area >= params.min_area
        xyxy, ids = xyxy[keep], ids[keep]
        if not len(ids):
            return _empty_boxes()
    score = _component_scores(wmap, labels, stats, ids, params.score)
    if params.class_prob_weight:
        score *= float(class_prob)
    if params.nms_iou is not None and len(score) > 1:
        keep = _nms(xyxy, score, params.nms_iou)
        xyxy, score = xyxy[keep], score[keep]
    return xyxy, score


def _nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by ``torchvision.ops.nms`` (drops boxes with IoU > ``iou``), in component order."""
    import torch  # heavy: only runs that ask for NMS pay for the import
    from torchvision.ops import nms

    keep = nms(torch.from_numpy(xyxy), torch.from_numpy(score), float(iou)).numpy()
    return np.sort(keep)


def boxes_from_map_sweep(wmap: np.ndarray, image_w: int, image_h: int, params: BoxParams,
                         percentiles: Sequence[float], class_prob: float = 1.0) -> list[BoxList]:
    """Boxes at each percentile of one 0-1 working map, original-image pixels; one list entry per percentile."""
    thresholds = percentile_thresholds(wmap, percentiles)
    return [boxes_at_threshold(wmap, t, image_w, image_h, params, class_prob) for t in thresholds]


def boxes_from_grid_sweep(grid2d: np.ndarray, image_w: int, image_h: int, params: BoxParams,
                          percentiles: Sequence[float], class_prob: float = 1.0) -> list[BoxList]:
    """Boxes at each percentile from a raw ``[grid_h, grid_w]`` grid; the working map is built once.

    image_w, image_h: original image size in pixels; returned boxes are in its pixels. ``params.percentile``
    is ignored in favour of ``percentiles``.
    """
    wmap = working_map(grid2d, image_w, image_h, params.box_resolution)
    return boxes_from_map_sweep(wmap, image_w, image_h, params, percentiles, class_prob)


def boxes_from_grid(grid2d: np.ndarray, image_w: int, image_h: int, params: BoxParams,
                    class_prob: float = 1.0) -> BoxList:
    """Boxes at ``params.percentile`` from a raw ``[grid_h, grid_w]`` grid, in original-image pixels.

    Returns ``(xyxy float64 [n, 4], score float64 [n])``; scores are 0-1 map values (times ``class_prob``
    when ``params.class_prob_weight``).
    """
    return boxes_from_grid_sweep(grid2d, image_w, image_h, params, [params.percentile], class_prob)[0]


# ----------------------------------------------------------------------------------------- many maps

@dataclass(frozen=True)
class _Chunk:
    """One worker's share: rows of the batch and the (row, class) pairs to cut."""

    grids: list[np.ndarray]
    sizes: np.ndarray
    pair_row: np.ndarray
    pair_class: np.ndarray
    pair_prob: np.ndarray


def _run_chunk(chunk: _Chunk, params: BoxParams, percentiles: tuple[float, ...]) -> list[tuple[np.ndarray, ...]]:
    """Cut every pair of a chunk at every percentile; per percentile concatenated (xyxy, score, class, row)."""
    acc: list[list[list[np.ndarray]]] = [[[], [], [], []] for _ in percentiles]
    for row, cls, prob in zip(chunk.pair_row.tolist(), chunk.pair_class.tolist(), chunk.pair_prob.tolist()):
        w, h = chunk.sizes[row]
        results = boxes_from_grid_sweep(chunk.grids[row][cls], int(w), int(h), params, percentiles, prob)
        for a, (xyxy, score) in zip(acc, results):
            if len(score):
                a[0].append(xyxy)
                a[1].append(score)
                a[2].append(np.full(len(score), cls, np.int64))
                a[3].append(np.full(len(score), row, np.int64))
    out = []
    for a in acc:
        if a[0]:
            out.append(tuple(np.concatenate(x) for x in a))
        else:
            out.append((np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)))
    return out


def _worker_init() -> None:
    # Each worker is one of the processes sharing the cores: OpenCV's own thread pool would oversubscribe.
    cv2.setNumThreads(1)


def sweep_detections(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams,
                     percentiles: Sequence[float] = DEFAULT_SWEEP_PERCENTILES, *,
                     pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                     class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                     workers: int = 1, chunk_pairs: int = 2048) -> dict[float, Detections]:
    """Boxes for many (image, class) pairs at many percentiles, one :class:`Detections` per percentile.

    grids: per image a raw ``[num_classes, grid_h, grid_w]`` array (a stacked ``[N, C, gh, gw]`` array works).
    image_sizes: ``[N, 2]`` original ``(width, height)`` in pixels. pair_image / pair_class: row into
    ``grids`` and class index of each pair to cut (the "present" protocol passes the annotated pairs);
    both None means every class of every image (the "open" protocol). class_probs: ``[N, C]`` image-level
    class probabilities, required when ``params.class_prob_weight``. image_ids: ``[N]`` dataset image
    index stored in ``Detections.image`` (default: the row). workers: processes (1 = in this process,
    0 = one per CPU); results are identical and in the same order whatever the count.
    """
    percentiles = tuple(float(p) for p in percentiles)
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    n_img = len(grids)
    if len(sizes) != n_img:
        raise ValueError(f"{n_img} grids but {len(sizes)} image sizes")
    if (pair_image is None) != (pair_class is None):
        raise ValueError("give both pair_image and pair_class, or neither")
    if pair_image is None:
        n_cls = np.array([np.shape(g)[0] for g in grids], np.int64)
        pair_image = np.repeat(np.arange(n_img), n_cls)
        pair_class = np.concatenate([np.arange(c) for c in n_cls]) if n_img else np.zeros(0, np.int64)
    pair_image = np.asarray(pair_image, np.int64).reshape(-1)
    pair_class = np.asarray(pair_class, np.int64).reshape(-1)
    if len(pair_image) != len(pair_class):
        raise ValueError("pair_image and pair_class differ in length")
    if len(pair_image) and (pair_image.min() < 0 or pair_image.max() >= n_img):
        raise ValueError("pair_image holds a row outside the grids")
    if params.class_prob_weight:
        if class_probs is None:
            raise ValueError("params.class_prob_weight needs class_probs")
        pair_prob = np.asarray(class_probs, np.float64)[pair_image, pair_class]
    else:
        pair_prob = np.ones(len(pair_image), np.float64)
    ids = np.arange(n_img, dtype=np.int64) if image_ids is None else np.asarray(image_ids, np.int64)
    # Pairs run grouped by image so chunks ship few grids; a stable sort keeps the caller's order within.
    order = np.argsort(pair_image, kind="stable")
    pair_image, pair_class, pair_prob = pair_image[order], pair_class[order], pair_prob[order]

    chunks = []
    for start in range(0, len(pair_image), max(1, chunk_pairs)):
        rows = pair_image[start:start + chunk_pairs]
        uniq, local = np.unique(rows, return_inverse=True)
        chunks.append((_Chunk([np.asarray(grids[r], np.float32) for r in uniq], sizes[uniq], local,
                               pair_class[start:start + chunk_pairs], pair_prob[start:start + chunk_pairs]),
                       uniq))
    workers = (os.cpu_count() or 1) if workers == 0 else workers
    if workers > 1 and len(chunks) > 1:
        # spawn, not fork: the caller may hold torch/CUDA threads that a forked child would inherit broken.
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=get_context("spawn"),
                                 initializer=_worker_init) as pool:
            results = list(pool.map(_run_chunk, [c for c, _ in chunks], [params] * len(chunks),
                                    [percentiles] * len(chunks)))
    else:
        results = [_run_chunk(c, params, percentiles) for c, _ in chunks]

    out: dict[float, Detections] = {}
    for pi, p in enumerate(percentiles):
        parts = []
        for (chunk, uniq), res in zip(chunks, results):
            xyxy, score, cls, local_row = res[pi]
            parts.append(Detections(xyxy, score, cls, ids[uniq[local_row]]))
        out[p] = Detections.concat(parts)
    return out


def extract_detections(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams, *,
                       pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                       class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                       workers: int = 1, chunk_pairs: int = 2048) -> Detections:
    """Boxes for many (image, class) pairs at ``params.percentile``; see :func:`sweep_detections`."""
    return sweep_detections(grids, image_sizes, params, [params.percentile], pair_image=pair_image,
                            pair_class=pair_class, class_probs=class_probs, image_ids=image_ids,
                            workers=workers, chunk_pairs=chunk_pairs)[float(params.percentile)]
