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

The pure cut of one working map at many thresholds is :func:`cut` (:func:`boxes_from_grid`: one raw grid at the rule of
its parameters); cutting many maps (chunks, worker processes, both protocols from one cut) is
:mod:`surgery_core.eval.cutting`.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from surgery_core.errors import InputError
from surgery_core.eval.maps import DEFAULT_BOX_RESOLUTION, image_scale, working_map
from surgery_core.eval.rules import (  # noqa: F401  (the rules' names, importable from here as before)
    DEFAULT_SWEEP_FIXED, OTSU_BINS, RULES, BoxRule, Cut, as_cut, cut_label, cut_short, cut_sort_key, cut_tag,
    otsu_threshold)

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

#: Maps of at least this many pixels select their order statistics by the compiled histogram; smaller ones by
#: ``np.partition`` (no faster to compile for).
_COMPILED_SELECTION = 8192


def percentile_thresholds(wmap: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Thresholds equal, bit for bit, to ``np.percentile(wmap, float(p))`` for each ``p`` (0-100).

    wmap: float32 working map (any shape, NaN-free). Returns float32 ``[len(percentiles)]`` in the map's
    units. One selection pass serves every percentile; the interpolation replays numpy's path for a Python
    float ``q`` (virtual index ``(n - 1) * p / 100``, two-sided lerp in float32), which the tests compare
    against numpy. (A numpy-float64 ``q`` makes numpy lerp in float64, which can differ in the last bit.)
    Large maps take one compiled call for selection and interpolation
    (:func:`surgery_core.eval.cutter.percentile_values`).
    """
    flat = np.ascontiguousarray(wmap, dtype=np.float32).ravel()
    if flat.size == 0:
        raise ValueError("cannot take a percentile of an empty map")
    plan = _percentile_plan(flat.size, tuple(map(float, percentiles)))
    kth, lo_pos, hi_pos, t, one_minus_t, upper = plan
    if not len(kth):
        return np.zeros(0, np.float32)
    if flat.size >= _COMPILED_SELECTION:
        from surgery_core.eval import cutter

        out = cutter.percentile_values(flat, *plan)
        if len(out):
            return out
        # a NaN or an infinity: numpy's selection below
    stats = np.partition(flat, kth)[kth]
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
    k, k2 = _rectangles(kernel)
    return cv2.dilate(cv2.erode(cv2.dilate(mask, k), k2), k)


@functools.lru_cache(maxsize=8)
def _rectangles(kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``kernel`` and ``2 * kernel - 1`` square structuring elements of :func:`close_open` (read-only)."""
    out = np.ones((kernel, kernel), np.uint8), np.ones((2 * kernel - 1, 2 * kernel - 1), np.uint8)
    for a in out:
        a.setflags(write=False)
    return out


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


def cut_rects(wmap: np.ndarray, thresholds: np.ndarray, params: BoxParams
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The components of one 0-1 float32 working map at every float32 threshold, in working pixels:
    ``(index, rect, score)``, where ``index`` is each component's threshold's position in ``thresholds``, ``rect``
    int32 ``[n, 5]`` as :func:`surgery_core.eval.cutter.cut_levels` gives them, ``score`` the raw mean or max;
    grouped by threshold (ascending value), each group in raster order of its components' first pixels."""
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
    if len(parts) > 1:
        return tuple(np.concatenate(x) for x in zip(*parts))
    return parts[0]


def place_boxes(index: np.ndarray, rect: np.ndarray, score: np.ndarray, sx, sy, params: BoxParams, class_prob
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Components (:func:`cut_rects`) to boxes in original-image pixels: ``(index, xyxy, score, kept)``,
    ``min_area``, the class-probability factor and NMS applied; ``kept`` the positions of the components kept.

    sx, sy: original pixels per working pixel (:func:`surgery_core.eval.maps.image_scale`), and class_prob: a
    number for the components of one map, or one value per component for those of many maps (the arithmetic is
    elementwise, so equal bit for bit); NMS (per threshold) needs the components of one map.
    """
    xyxy = np.empty((len(rect), 4), np.float64)
    xyxy[:, 0] = rect[:, 0] * sx
    xyxy[:, 1] = rect[:, 1] * sy
    xyxy[:, 2] = rect[:, 2] * sx
    xyxy[:, 3] = rect[:, 3] * sy
    kept = np.arange(len(score))
    if params.min_area > 0:
        keep = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) >= params.min_area
        index, xyxy, score, kept = index[keep], xyxy[keep], score[keep], kept[keep]
        if np.ndim(class_prob):
            class_prob = class_prob[keep]
    if params.class_prob_weight:
        score = score * (np.asarray(class_prob, np.float64) if np.ndim(class_prob) else float(class_prob))
    if params.nms_iou is not None and len(score) > 1:
        if np.ndim(sx):
            raise ValueError("NMS runs on the boxes of one map at a time")
        bounds = np.flatnonzero(np.diff(index)) + 1
        keep = np.concatenate([s + _nms(xyxy[s:e], score[s:e], params.nms_iou)
                               for s, e in zip([0, *bounds], [*bounds, len(score)])])
        index, xyxy, score, kept = index[keep], xyxy[keep], score[keep], kept[keep]
    return index, xyxy, score, kept


class MapBoxes(NamedTuple):
    """The boxes of one map at several thresholds, flat (what :func:`cut` returns): ``index`` int ``[n]``, the
    position of each box's threshold in the thresholds given; ``xyxy`` float64 ``[n, 4]`` original-image pixels;
    ``score`` float64 ``[n]``. Grouped by threshold (ascending value), each group in raster order of its components'
    first pixels."""

    index: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray

    def at(self, i: int) -> BoxList:
        """``(xyxy, score)`` of the ``i``-th threshold."""
        sel = self.index == i
        return self.xyxy[sel], self.score[sel]

    def per_threshold(self, n: int) -> list[BoxList]:
        """``(xyxy, score)`` of each of the ``n`` thresholds, in their given order."""
        return [self.at(i) for i in range(n)]


def cut(wmap: np.ndarray, thresholds: Sequence[float], image_w: int, image_h: int, params: BoxParams,
        class_prob: float = 1.0) -> MapBoxes:
    """Boxes of one 0-1 working map at each threshold (map units), in original-image pixels: the pure box cut.

    wmap: float32 ``[working_h, working_w]`` (:func:`surgery_core.eval.maps.working_map`); a pixel is foreground at
    threshold ``t`` when ``wmap >= t`` (turn percentiles or box rules into thresholds with :func:`cut_thresholds`).
    ``params.percentile`` and ``params.rule`` are not used here; morphology, connectivity, score, ``min_area``, the
    class-probability factor and NMS are. The masks of all thresholds are cut in one pass
    (:mod:`surgery_core.eval.cutter`), equal to thresholding, morphology and labelling each alone.

    >>> wmap = np.zeros((8, 8), np.float32); wmap[1:3, 1:4] = 1.0; wmap[5:7, 5:7] = 0.5
    >>> got = cut(wmap, [0.25, 0.75], 16, 16, BoxParams(morph_kernel=1, box_resolution=8))
    >>> got.index.tolist(), got.xyxy.tolist(), got.score.tolist()
    ([0, 0, 1], [[2.0, 2.0, 8.0, 6.0], [10.0, 10.0, 14.0, 14.0], [2.0, 2.0, 8.0, 6.0]], [1.0, 0.5, 1.0])
    """
    wmap = np.ascontiguousarray(wmap, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32).reshape(-1)
    if not len(thresholds):
        return MapBoxes(np.zeros(0, np.int64), *_empty_boxes())
    sx, sy = image_scale(image_w, image_h, params.box_resolution)
    return MapBoxes(*place_boxes(*cut_rects(wmap, thresholds, params), sx, sy, params, class_prob)[:3])


def _nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by ``torchvision.ops.nms`` (drops boxes with IoU > ``iou``), in component order."""
    import torch  # heavy: only runs that ask for NMS pay for the import
    from torchvision.ops import nms

    keep = nms(torch.from_numpy(xyxy), torch.from_numpy(score), float(iou)).numpy()
    return np.sort(keep)


def boxes_from_grid(grid2d: np.ndarray, image_w: int, image_h: int, params: BoxParams,
                    class_prob: float = 1.0) -> BoxList:
    """Boxes by the rule of ``params`` (:attr:`BoxParams.cut`) from a raw ``[grid_h, grid_w]`` grid, in
    original-image pixels.

    Returns ``(xyxy float64 [n, 4], score float64 [n])``; scores are 0-1 map values (times ``class_prob``
    when ``params.class_prob_weight``).
    """
    wmap = working_map(grid2d, image_w, image_h, params.box_resolution)
    return cut(wmap, cut_thresholds(wmap, [params.cut]), image_w, image_h, params, class_prob).at(0)
