"""Boxes cut from heatmaps: threshold, morphology, connected components, one scored box per component.

Per image and class (docs/DESIGN.md section 4):

1. working map: the raw grid min-max normalised to 0-1 and upsampled to the working resolution
   (:func:`surgery_core.eval.maps.working_map`; ``box_resolution`` pixels square, or the image's own size);
2. threshold, by the box rule (``BoxParams.rule``): ``mask = map >= t`` with ``t`` the ``p``-th percentile of the
   map (``np.percentile``, numpy's default linear interpolation over all working-map pixels; the seed's rule and
   the default), Otsu's threshold of the map (:func:`otsu_threshold`: 256 bins over 0-1) or a fixed value of the
   0-1 map (compared in float32). A rule other than the percentile is a :class:`BoxRule`; wherever a percentile
   is passed (``percentiles`` of the sweeps, the cells of a run), a :class:`BoxRule` may stand in its place;
3. morphology: close then open with a ``morph_kernel`` x ``morph_kernel`` rectangle (1 = off), which fills
   gaps narrower than the kernel and then removes specks smaller than it, with OpenCV's default borders
   (as the seed): erosion counts the outside as foreground, so a region touching the image edge keeps its
   edge and a speck within ``morph_kernel // 2`` pixels of the edge can survive;
4. connected components (``connectivity`` 8 or 4), one box per component: a component spanning working
   columns ``a..b`` and rows ``c..d`` becomes ``x = [a, b + 1) * sx``, ``y = [c, d + 1) * sy`` in
   original-image pixels (continuous xyxy, no +1), ``sx = image_w / working_w``;
5. score: the mean (or max) of the 0-1 working map over the component's pixels, optionally times the
   image-level class probability;
6. optional ``min_area`` filter (original-image px^2) and NMS (``torchvision.ops.nms``, per image and class).

Sweeps over many percentiles reuse one working map: :func:`boxes_from_grid_sweep`, :func:`sweep_detections`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from surgery_core.data.detections import Detections
from surgery_core.errors import InputError
from surgery_core.eval.maps import DEFAULT_BOX_RESOLUTION, image_scale, working_map
from surgery_core.eval.rules import (  # noqa: F401  (the rules' names, importable from here as before)
    DEFAULT_SWEEP_FIXED, OTSU_BINS, RULES, BoxRule, Cut, as_cut, cut_label, cut_short, cut_sort_key, cut_tag,
    otsu_threshold)
from surgery_core.parallel import resolve_workers, spawn_map

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
    max_dets: int = Field(100, ge=0, description="keep at most this many boxes per image (over all its classes) "
                                                 "per method, protocol and percentile, the highest scores first, "
                                                 "as detectors and COCO's maxDets do; 0 = no cap. Applied by "
                                                 "the run's box store, see maxdets.py")
    rule: Literal["percentile", "otsu", "fixed"] = Field(
        "percentile", description="box rule: percentile (the seed's: ``percentile`` of each map), otsu (Otsu's "
                                  "threshold of each min-max-normalised working map, 256 bins) or fixed "
                                  "(``fixed_value`` of the 0-1 map)")
    fixed_value: float = Field(0.5, ge=0.0, le=1.0, description="threshold of the fixed rule, a 0-1 map value")
    refine: Literal["none", "pamr"] = Field(
        "none", description="refine each class map before thresholding: none, or pamr (10 iterations, "
                            "dilations 8 and 16 px at the model's input size, guided by the image; NACLIP's "
                            "setting). Applied by the run (evaluation.cut_boxes, Run.boxes_for), see refine.py")

    @property
    def cut(self) -> Cut:
        """The cut of these parameters: ``percentile`` as a float, or the :class:`BoxRule` of the other rules."""
        if self.rule == "otsu":
            return BoxRule("otsu")
        if self.rule == "fixed":
            return BoxRule("fixed", self.fixed_value)
        return float(self.percentile)

    def with_cut(self, c: Cut) -> "BoxParams":
        """These parameters cutting at ``c`` (a percentile or a :class:`BoxRule`)."""
        c = as_cut(c)
        if isinstance(c, BoxRule):
            return self.model_copy(update={"rule": c.kind} | ({"fixed_value": c.value} if c.kind == "fixed" else {}))
        return self.model_copy(update={"rule": "percentile", "percentile": c})

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

def order_statistics(values: np.ndarray, kth: np.ndarray) -> np.ndarray:
    """The ``kth`` smallest elements (0-based, sorted unique indices) of a 1-D float32 array, exactly.

    Same values as ``np.partition(values, kth)[kth]``, found faster on large maps by a compiled histogram
    selection (:func:`surgery_core.eval.cutter.order_stats`).
    """
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    kth = np.asarray(kth, dtype=np.int64)
    if flat.size < 8192 or not np.isfinite(flat).all():
        return np.partition(flat, kth)[kth]
    from surgery_core.eval import cutter

    return cutter.order_stats(flat, kth)


def percentile_thresholds(wmap: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Thresholds equal, bit for bit, to ``np.percentile(wmap, float(p))`` for each ``p`` (0-100).

    wmap: float32 working map (any shape, NaN-free). Returns float32 ``[len(percentiles)]`` in the map's
    units. One selection pass serves every percentile; the interpolation replays numpy's path for a Python
    float ``q`` (virtual index ``(n - 1) * p / 100``, two-sided lerp in float32), which the tests compare
    against numpy. (A numpy-float64 ``q`` makes numpy lerp in float64, which can differ in the last bit.)
    """
    flat = np.asarray(wmap, dtype=np.float32).ravel()
    if flat.size == 0:
        raise ValueError("cannot take a percentile of an empty map")
    kth, lo_pos, hi_pos, t, one_minus_t, upper = _percentile_plan(flat.size, tuple(float(p) for p in percentiles))
    if not len(kth):
        return np.zeros(0, np.float32)
    stats = order_statistics(flat, kth)
    a, b = stats[lo_pos], stats[hi_pos]
    d = b - a
    # numpy's _lerp: a + d*t below t = 0.5, b - d*(1-t) from 0.5 up, in the map's float32.
    return np.where(upper, b - d * one_minus_t, a + d * t)


def cut_thresholds(wmap: np.ndarray, cuts: Sequence) -> np.ndarray:
    """float32 ``[len(cuts)]``: the threshold of each cut on one 0-1 working map. Percentiles are
    :func:`percentile_thresholds` (the same call, bit for bit, when every cut is a percentile), Otsu is
    :func:`otsu_threshold`, a fixed value is itself in float32."""
    cuts = [as_cut(c) for c in cuts]
    rules = [i for i, c in enumerate(cuts) if isinstance(c, BoxRule)]
    if not rules:
        return percentile_thresholds(wmap, cuts)
    out = np.empty(len(cuts), np.float32)
    pct = [i for i, c in enumerate(cuts) if not isinstance(c, BoxRule)]
    if pct:
        out[pct] = percentile_thresholds(wmap, [cuts[i] for i in pct])
    otsu = None
    for i in rules:
        if cuts[i].kind == "otsu":
            otsu = otsu_threshold(wmap) if otsu is None else otsu
            out[i] = otsu
        else:
            out[i] = np.float32(cuts[i].value)
    return out


@functools.lru_cache(maxsize=64)
def _percentile_plan(n: int, percentiles: tuple[float, ...]):
    """What :func:`percentile_thresholds` needs of a map of ``n`` pixels, computed once per size and percentile
    list: the order statistics to select (``kth``), each percentile's lower and upper neighbour among them,
    and its interpolation weights as float32 (``t`` and ``1 - t``, each rounded from float64 as numpy does)."""
    lo_idx, hi_idx, gammas = [], [], []
    for p in percentiles:
        if not 0.0 <= p <= 100.0:
            raise InputError(None, f"percentile must be within 0-100, got {p:g}")
        v = (n - 1) * float(np.true_divide(p, 100))
        lo = int(np.floor(v))
        lo_i, hi_i = (n - 1, n - 1) if v >= n - 1 else (lo, lo + 1)
        lo_idx.append(lo_i)
        hi_idx.append(hi_i)
        gammas.append(v - lo)
    kth = np.unique(np.array(lo_idx + hi_idx, dtype=np.int64))
    plan = (kth, np.searchsorted(kth, lo_idx), np.searchsorted(kth, hi_idx),
            np.array([np.float32(g) for g in gammas], np.float32),
            np.array([np.float32(1.0 - g) for g in gammas], np.float32), np.array(gammas) >= 0.5)
    for arr in plan:
        arr.setflags(write=False)  # shared by every caller of the cache
    return plan


# ------------------------------------------------------------------------------------------ one map

def close_open(mask: np.ndarray, kernel: int) -> np.ndarray:
    """Morphological close then open of a uint8 mask, or of a level map, with a ``kernel`` x ``kernel`` rectangle.

    Reference semantics: ``cv2.morphologyEx(CLOSE)`` then ``cv2.morphologyEx(OPEN)`` with OpenCV's default
    borders (outside counts as background for dilation, foreground for erosion, so edge-touching regions
    keep their edge). Written as dilate, erode with the ``2 * kernel - 1`` rectangle (two erosions by a
    rectangle are one by their sum), dilate: three passes instead of four. On a level map (see
    :mod:`surgery_core.eval.cutter`) it closes and opens the mask of every level at once: ``close_open(L) > i``
    equals ``close_open(L > i)``.
    """
    if kernel <= 1:
        return mask
    k = np.ones((kernel, kernel), np.uint8)
    k2 = np.ones((2 * kernel - 1, 2 * kernel - 1), np.uint8)
    return cv2.dilate(cv2.erode(cv2.dilate(mask, k), k2), k)


def find_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a uint8 0/1 mask, in raster order of each component's first pixel.

    Returns ``(rects, seeds)``: ``rects`` int ``[K, 4]`` as ``(left, top, width, height)`` in mask pixels
    (the components' bounding boxes) and ``seeds`` int ``[K, 2]`` the ``(x, y)`` of each component's first
    pixel.
    """
    from surgery_core.eval import cutter

    m = np.ascontiguousarray(np.asarray(mask) != 0, np.uint8)
    _, r, _ = cutter.cut_levels(m, np.zeros(m.shape, np.float32), 1, connectivity == 8, False)
    r = r.astype(np.int64)
    rects = np.stack([r[:, 0], r[:, 1], r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]], axis=1).reshape(-1, 4)
    return rects, np.stack([r[:, 4], r[:, 1]], axis=1).reshape(-1, 2)


def _cut(wmap: np.ndarray, thresholds: np.ndarray, image_w: int, image_h: int, params: BoxParams,
         class_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of one 0-1 working map at every threshold, flat: ``(index, xyxy, score)``, where ``index`` is the
    box's threshold's position in ``thresholds``; grouped by threshold (ascending value), each group in raster
    order of its components' first pixels, min_area and NMS applied."""
    from surgery_core.eval import cutter

    order = np.argsort(thresholds, kind="stable")
    ordered = thresholds[order]
    parts = []
    for g0 in range(0, len(ordered), cutter.MAX_LEVELS):  # uint8 levels: at most 255 thresholds per map
        group = ordered[g0:g0 + cutter.MAX_LEVELS]
        levels = close_open(cutter.level_map(wmap, group), params.morph_kernel)
        level, rect, score = cutter.cut_levels(levels, wmap, len(group), params.connectivity == 8,
                                               params.score == "max")
        parts.append((order[g0 + level], rect, score))
    index, rect, score = (np.concatenate(x) for x in zip(*parts)) if len(parts) > 1 else parts[0]
    sx, sy = image_scale(image_w, image_h, params.box_resolution)
    xyxy = np.empty((len(rect), 4), np.float64)
    xyxy[:, 0] = rect[:, 0] * sx
    xyxy[:, 1] = rect[:, 1] * sy
    xyxy[:, 2] = rect[:, 2] * sx
    xyxy[:, 3] = rect[:, 3] * sy
    if params.min_area > 0:
        keep = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) >= params.min_area
        index, xyxy, score = index[keep], xyxy[keep], score[keep]
    if params.class_prob_weight:
        score = score * float(class_prob)
    if params.nms_iou is not None and len(score) > 1:
        bounds = np.flatnonzero(np.diff(index)) + 1
        keep = np.concatenate([s + _nms(xyxy[s:e], score[s:e], params.nms_iou)
                               for s, e in zip([0, *bounds], [*bounds, len(score)])])
        index, xyxy, score = index[keep], xyxy[keep], score[keep]
    return index, xyxy, score


def boxes_at_thresholds(wmap: np.ndarray, thresholds: Sequence[float], image_w: int, image_h: int,
                        params: BoxParams, class_prob: float = 1.0) -> list[BoxList]:
    """Boxes from one 0-1 working map at each threshold (map units), in original-image pixels.

    wmap: float32 ``[working_h, working_w]`` (see :func:`surgery_core.eval.maps.working_map`); a pixel is
    foreground at threshold ``t`` when ``wmap >= t``. ``params.percentile`` is not used here. Boxes of one
    threshold come in raster order of their components' first pixels. The masks of all thresholds are cut in
    one pass (:mod:`surgery_core.eval.cutter`), equal to thresholding, morphology and labelling each alone.
    """
    wmap = np.ascontiguousarray(wmap, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
    out = [_empty_boxes() for _ in thresholds]
    if not len(thresholds):
        return out
    index, xyxy, score = _cut(wmap, thresholds, image_w, image_h, params, class_prob)
    for i in np.unique(index).tolist():
        sel = index == i
        out[i] = (xyxy[sel], score[sel])
    return out


def _nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by ``torchvision.ops.nms`` (drops boxes with IoU > ``iou``), in component order."""
    import torch  # heavy: only runs that ask for NMS pay for the import
    from torchvision.ops import nms

    keep = nms(torch.from_numpy(xyxy), torch.from_numpy(score), float(iou)).numpy()
    return np.sort(keep)


def boxes_from_map_sweep(wmap: np.ndarray, image_w: int, image_h: int, params: BoxParams,
                         percentiles: Sequence[float], class_prob: float = 1.0) -> list[BoxList]:
    """Boxes at each percentile (or :class:`BoxRule`) of one 0-1 working map, original-image pixels; one list entry
    per percentile."""
    return boxes_at_thresholds(wmap, cut_thresholds(wmap, percentiles), image_w, image_h, params,
                               class_prob)


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
    """Boxes by the rule of ``params`` (:attr:`BoxParams.cut`) from a raw ``[grid_h, grid_w]`` grid, in
    original-image pixels.

    Returns ``(xyxy float64 [n, 4], score float64 [n])``; scores are 0-1 map values (times ``class_prob``
    when ``params.class_prob_weight``).
    """
    return boxes_from_grid_sweep(grid2d, image_w, image_h, params, [params.cut], class_prob)[0]


# ----------------------------------------------------------------------------------------- many maps

@dataclass(frozen=True)
class _Chunk:
    """One worker's share: rows of the batch and the (row, class) pairs to cut."""

    grids: list[np.ndarray]
    sizes: np.ndarray
    pair_row: np.ndarray
    pair_class: np.ndarray
    pair_prob: np.ndarray
    pair_also: np.ndarray | None = None  # bool per pair: also a pair of the second set (see sweep_detections)


def _run_chunk(chunk: _Chunk, params: BoxParams, percentiles: tuple[float, ...], max_dets: int = 0,
               also_weighted: bool | None = None) -> list[list[tuple[np.ndarray, ...]]]:
    """Cut every pair of a chunk at every percentile; per set of pairs, per percentile concatenated
    (xyxy, score, class, row): ``[main]``, or ``[main, second]`` when the chunk marks a second set.

    Each pair's map is cut once; the second set's scores are the same raw scores, times the class probability
    when ``also_weighted``. max_dets: cap per image of each set's and percentile's boxes
    (:mod:`surgery_core.eval.maxdets`; 0 = none); the chunk must then hold every pair of its images. Capping
    here, in the worker, keeps uncapped boxes out of the parent."""
    sets = 1 if chunk.pair_also is None else 2
    raw = params.model_copy(update={"class_prob_weight": False}) if sets == 2 else params
    weighted = (params.class_prob_weight, also_weighted)
    parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(sets)]
    also = chunk.pair_also.tolist() if sets == 2 else [False] * len(chunk.pair_row)
    for row, cls, prob, second in zip(chunk.pair_row.tolist(), chunk.pair_class.tolist(),
                                      chunk.pair_prob.tolist(), also):
        w, h = chunk.sizes[row]
        wmap = working_map(chunk.grids[row][cls], int(w), int(h), params.box_resolution)
        index, xyxy, score = _cut(wmap, cut_thresholds(wmap, percentiles), int(w), int(h), raw, prob)
        if not len(score):
            continue
        ids = (np.full(len(score), cls, np.int64), np.full(len(score), row, np.int64))
        for k in range(1 + bool(second)) if sets == 2 else (0,):
            sc = score * float(prob) if sets == 2 and weighted[k] else score  # _cut's own product, same bits
            parts[k].append((index, xyxy, sc, *ids))
    return [_by_percentile(p, len(percentiles), max_dets) for p in parts]


def _by_percentile(parts: list[tuple[np.ndarray, ...]], n_percentiles: int, max_dets: int) -> list[tuple]:
    """Per-pair ``(index, xyxy, score, class, row)`` parts into per-percentile columns, capped per image."""
    if parts:
        index, *cols = (np.concatenate(x) for x in zip(*parts))
        # Pairs in chunk order, each pair's boxes grouped by percentile: a stable sort by percentile keeps
        # that order within each percentile.
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(n_percentiles + 1))
        out = [tuple(c[order[bounds[i]:bounds[i + 1]]] for c in cols) for i in range(n_percentiles)]
    else:
        out = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
               for _ in range(n_percentiles)]
    if max_dets:
        from surgery_core.eval.maxdets import cap_indices

        for i, cols in enumerate(out):
            keep = cap_indices(cols[3], cols[1], max_dets)
            if keep is not None:
                out[i] = tuple(c[keep] for c in cols)
    return out


def sweep_detections(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams,
                     percentiles: Sequence[float] = DEFAULT_SWEEP_PERCENTILES, *,
                     pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                     class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                     workers: int = 1, chunk_pairs: int | None = None,
                     progress: Callable[[int], None] | None = None, max_dets: int = 0) -> dict[float, Detections]:
    """Boxes for many (image, class) pairs at many percentiles, one :class:`Detections` per percentile.

    grids: per image a raw ``[num_classes, grid_h, grid_w]`` array (a stacked ``[N, C, gh, gw]`` array works).
    image_sizes: ``[N, 2]`` original ``(width, height)`` in pixels. pair_image / pair_class: row into
    ``grids`` and class index of each pair to cut (the "present" protocol passes the annotated pairs);
    both None means every class of every image (the "open" protocol). class_probs: ``[N, C]`` image-level
    class probabilities, required when ``params.class_prob_weight``. image_ids: ``[N]`` dataset image
    index stored in ``Detections.image`` (default: the row). workers: processes (1 = in this process,
    0 = one per CPU); results are identical and in the same order whatever the count. Workers are spawned
    (about a second to start; see :mod:`surgery_core.parallel`). chunk_pairs: pairs per task (default:
    about sixteen tasks per worker, so none idles long at the end; 128 to 4096 pairs each).
    Detections come grouped by image (in row order), then in the callers' pair order, then per box.
    progress: called with the number of pairs of each chunk once it is cut (a progress bar's ``update``).
    max_dets: at most this many boxes per image and percentile, highest scores first (:mod:`surgery_core.eval.maxdets`,
    ties keep the earlier box; 0 = no cap); applied in the workers, chunks then end on image boundaries.
    """
    return _sweep(grids, image_sizes, params, percentiles, pair_image, pair_class, None, class_probs, image_ids,
                  workers, chunk_pairs, progress, max_dets)[0]


def sweep_two_sets(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams,
                   also_params: BoxParams, also_pairs: tuple[np.ndarray, np.ndarray],
                   percentiles: Sequence[float] = DEFAULT_SWEEP_PERCENTILES, *,
                   pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                   class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                   workers: int = 1, chunk_pairs: int | None = None,
                   progress: Callable[[int], None] | None = None,
                   max_dets: int = 0) -> tuple[dict[float, Detections], dict[float, Detections]]:
    """Two :func:`sweep_detections` from one cut: the pairs given as for it, with ``params``, and a subset of them,
    ``also_pairs`` ``(pair_image, pair_class)``, with ``also_params``; equal, box for box and bit for bit, to
    two calls (the open and present protocols of one method: the present pairs are cut once, not twice).

    ``also_params`` may differ from ``params`` only in ``class_prob_weight`` (a box's geometry and raw score
    do not depend on it), and NMS must be off (torchvision orders equal scores its own way, and weighting
    by a probability of 0 makes scores equal). Within each image the subset must keep the order of the
    full set (both ascending by class, as the protocols' pairs are). progress counts the maps of both sets.
    """
    if also_params.model_copy(update={"class_prob_weight": params.class_prob_weight}) != params:
        raise ValueError("also_params may differ from params only in class_prob_weight")
    if params.nms_iou is not None:
        raise ValueError("sweep_two_sets needs NMS off: cut the two sets apart")
    main, second = _sweep(grids, image_sizes, params, percentiles, pair_image, pair_class, also_pairs,
                          class_probs, image_ids, workers, chunk_pairs, progress, max_dets,
                          also_weighted=also_params.class_prob_weight)
    return main, second


def _sweep(grids, image_sizes, params, percentiles, pair_image, pair_class, also_pairs, class_probs, image_ids,
           workers, chunk_pairs, progress, max_dets, also_weighted: bool | None = None) -> list[dict]:
    """The body of :func:`sweep_detections` and :func:`sweep_two_sets`: one dict per set of pairs."""
    percentiles = tuple(as_cut(p) for p in percentiles)
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
    if params.class_prob_weight or also_weighted:
        if class_probs is None:
            raise ValueError("params.class_prob_weight needs class_probs")
        pair_prob = np.asarray(class_probs, np.float64)[pair_image, pair_class]
    else:
        pair_prob = np.ones(len(pair_image), np.float64)
    ids = np.arange(n_img, dtype=np.int64) if image_ids is None else np.asarray(image_ids, np.int64)
    # Pairs run grouped by image so chunks ship few grids; a stable sort keeps the caller's order within.
    order = np.argsort(pair_image, kind="stable")
    pair_image, pair_class, pair_prob = pair_image[order], pair_class[order], pair_prob[order]
    pair_also = None
    if also_pairs is not None:
        also_image, also_class = (np.asarray(a, np.int64).reshape(-1) for a in also_pairs)
        also_order = np.argsort(also_image, kind="stable")
        width = int(max(pair_class.max(initial=0), also_class.max(initial=0))) + 1
        pair_also = np.isin(pair_image * width + pair_class, also_image * width + also_class)
        if not (np.array_equal(pair_image[pair_also], also_image[also_order])
                and np.array_equal(pair_class[pair_also], also_class[also_order])):
            raise ValueError("also_pairs must be distinct pairs of the full set, in its order within each image")

    workers = resolve_workers(workers)
    if chunk_pairs is None:
        chunk_pairs = int(np.clip(-(-len(pair_image) // (16 * workers)), 128, 4096))
    chunk_pairs = max(1, chunk_pairs)
    chunks = []
    bounds = list(range(0, len(pair_image), chunk_pairs)) + [len(pair_image)]
    if max_dets:  # the cap is per image: move each chunk start to the first pair of its image
        bounds = np.unique(np.searchsorted(pair_image, pair_image[bounds[:-1]], side="left").tolist()
                           + [len(pair_image)]).tolist() if len(pair_image) else [0]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = pair_image[start:stop]
        uniq, local = np.unique(rows, return_inverse=True)
        chunks.append((_Chunk([np.asarray(grids[r], np.float32) for r in uniq], sizes[uniq], local,
                               pair_class[start:stop], pair_prob[start:stop],
                               None if pair_also is None else pair_also[start:stop]),
                       uniq))

    def tick(k: int) -> None:
        if progress is not None:
            c = chunks[k][0]
            progress(len(c.pair_class) + (0 if c.pair_also is None else int(c.pair_also.sum())))

    if workers > 1 and len(chunks) > 1:
        results = spawn_map(_run_chunk, [c for c, _ in chunks], [params] * len(chunks),
                            [percentiles] * len(chunks), [max_dets] * len(chunks),
                            [also_weighted] * len(chunks), workers=workers, on_result=tick)
    else:
        results = []
        for k, (c, _) in enumerate(chunks):
            results.append(_run_chunk(c, params, percentiles, max_dets, also_weighted))
            tick(k)

    out: list[dict[float, Detections]] = []
    for si in range(1 if pair_also is None else 2):
        sweep: dict[float, Detections] = {}
        for pi, p in enumerate(percentiles):
            parts = []
            for (chunk, uniq), res in zip(chunks, results):
                xyxy, score, cls, local_row = res[si][pi]
                parts.append(Detections(xyxy, score, cls, ids[uniq[local_row]]))
            sweep[p] = Detections.concat(parts)
        out.append(sweep)
    return out


def extract_detections(grids: Sequence[np.ndarray], image_sizes: np.ndarray, params: BoxParams, *,
                       pair_image: np.ndarray | None = None, pair_class: np.ndarray | None = None,
                       class_probs: np.ndarray | None = None, image_ids: np.ndarray | None = None,
                       workers: int = 1, chunk_pairs: int | None = None) -> Detections:
    """Boxes for many (image, class) pairs by the rule of ``params`` (:attr:`BoxParams.cut`); see
    :func:`sweep_detections`."""
    return sweep_detections(grids, image_sizes, params, [params.cut], pair_image=pair_image,
                            pair_class=pair_class, class_probs=class_probs, image_ids=image_ids,
                            workers=workers, chunk_pairs=chunk_pairs)[params.cut]
