"""Box overlap and VOC-style greedy matching of detections to ground truth, vectorised with numpy.

Boxes are ``xyxy`` pixels, continuous coordinates, no +1 convention (see :mod:`surgery_core.data.detections`).
IoU is intersection area / union area, a unitless number in [0, 1]; a pair whose union is empty (two
zero-area boxes) has IoU 0, never NaN.

Matching semantics (docs/DESIGN.md section 5, PASCAL VOC devkit ``voc_eval.py`` except for ``>=`` and the
continuous coordinates): per class, detections are visited in descending score order over all images
(stable: ties keep their input order); each detection looks only at the ground truth of its class in its
image and picks the one of highest IoU (``np.argmax`` semantics: the first in ground-truth order on
ties). It is a true positive iff that IoU >= the threshold and that ground truth was not already claimed
by an earlier true positive; otherwise it is a false positive. A detection whose best ground truth is
taken does not fall back to its second best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from surgery_core.data.detections import Detections
from surgery_core.errors import InputError

# Detection/ground-truth pairs materialised at once when searching each detection's best ground truth.
# About 100 bytes per pair live at the peak, so this bounds the working memory to roughly 200 MB while
# keeping numpy's per-call overhead negligible (DIOR test has ~7M same-class same-image pairs).
_PAIR_CHUNK = 2_000_000


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """Area in square pixels of ``[N, 4]`` xyxy boxes; inverted boxes count as 0."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 0.0, None)
    return wh[:, 0] * wh[:, 1]


def _iou_from_parts(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    union = area_a + area_b - inter
    out = np.zeros(np.broadcast(inter, union).shape, dtype=np.float64)
    # An empty union only happens for two zero-area boxes: define their IoU as 0 instead of 0/0.
    np.divide(inter, union, out=out, where=union > 0)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` between ``[N, 4]`` and ``[M, 4]`` xyxy boxes (pixels, continuous).

    >>> box_iou([[0, 0, 10, 10]], [[0, 0, 10, 5], [5, 0, 15, 10]]).round(4).tolist()
    [[0.5, 0.3333]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0, None)
    return _iou_from_parts(iw * ih, box_area(a)[:, None], box_area(b)[None, :])


def _paired_iou(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    iw = np.minimum(a[:, 2], b[:, 2])
    iw -= np.maximum(a[:, 0], b[:, 0])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(a[:, 3], b[:, 3])
    ih -= np.maximum(a[:, 1], b[:, 1])
    np.maximum(ih, 0.0, out=ih)
    iw *= ih
    return _iou_from_parts(iw, area_a, area_b)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU ``[P]`` between two ``[P, 4]`` xyxy box arrays (box i of ``a`` with box i of ``b``)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return _paired_iou(a, box_area(a), b, box_area(b))


def score_order(det: Detections) -> np.ndarray:
    """Indices of ``det`` sorted by class, then descending score; ties keep input order (stable)."""
    # Two stable sorts equal np.lexsort((-score, class_id)) at half its cost: numpy radix-sorts the
    # class ids when they fit 16 bits.
    by_score = np.argsort(-det.score, kind="stable")
    cls = det.class_id[by_score]
    if len(cls) and 0 <= cls.min() and cls.max() < 2 ** 16:
        cls = cls.astype(np.uint16)
    return by_score[np.argsort(cls, kind="stable")]


@dataclass(frozen=True)
class BestMatch:
    """Each detection's best ground truth, independent of any IoU threshold (input order).

    best_gt: int64 [N], index into the ground-truth ``Detections``, -1 when the detection's image has no
    ground truth of its class. best_iou: float64 [N], IoU with ``best_gt`` (0 when there is none).
    """

    best_gt: np.ndarray
    best_iou: np.ndarray


def best_ground_truth(gt: Detections, det: Detections) -> BestMatch:
    """For every detection, the same-class same-image ground truth of highest IoU (first on ties)."""
    n = len(det)
    best_gt = np.full(n, -1, dtype=np.int64)
    best_iou = np.zeros(n, dtype=np.float64)
    if n == 0 or len(gt) == 0:
        return BestMatch(best_gt, best_iou)

    n_cls = int(max(gt.class_id.max(), det.class_id.max())) + 1
    gt_key = gt.image * n_cls + gt.class_id
    det_key = det.image * n_cls + det.class_id
    # Stable sort: inside a (image, class) group the ground truths stay in input order, so the first
    # maximum found below is np.argmax's pick over that image's ground truth.
    gt_order = np.argsort(gt_key, kind="stable")
    gt_key_sorted = gt_key[gt_order]
    start = np.searchsorted(gt_key_sorted, det_key, side="left")
    count = np.searchsorted(gt_key_sorted, det_key, side="right") - start

    has = np.flatnonzero(count > 0)
    if len(has) == 0:
        return BestMatch(best_gt, best_iou)
    # Areas once per box rather than once per pair.
    det_area, gt_area = box_area(det.xyxy), box_area(gt.xyxy)
    cum = np.cumsum(count[has])
    # Split the detections that have candidates into chunks of at most ~_PAIR_CHUNK pairs (a detection's
    # pairs never straddle chunks). This loop runs over memory-sized chunks, not over images or boxes.
    bounds = np.searchsorted(cum, np.arange(_PAIR_CHUNK, cum[-1], _PAIR_CHUNK), side="left") + 1
    bounds = np.unique(np.concatenate(([0], bounds, [len(has)])))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        d_idx = has[lo:hi]
        c = count[d_idx]
        total = int(c.sum())
        seg_start = np.cumsum(c) - c                    # offset of each detection's first pair
        seg = np.repeat(np.arange(len(d_idx)), c)       # which detection each pair belongs to
        pos = start[d_idx][seg] + (np.arange(total) - seg_start[seg])
        g_idx = gt_order[pos]
        d_pair = d_idx[seg]
        iou = _paired_iou(det.xyxy[d_pair], det_area[d_pair], gt.xyxy[g_idx], gt_area[g_idx])
        seg_max = np.maximum.reduceat(iou, seg_start)
        hit = np.flatnonzero(iou == seg_max[seg])
        # hit is sorted, so the first hit of each segment is the first maximum (argmax semantics).
        first = hit[np.concatenate(([True], seg[hit][1:] != seg[hit][:-1]))]
        best_gt[d_idx] = g_idx[first]
        best_iou[d_idx] = seg_max
    return BestMatch(best_gt, best_iou)


def true_positives(best: BestMatch, order: np.ndarray, threshold: float) -> np.ndarray:
    """bool [N] true-positive flags (input order) at one IoU threshold, given each detection's best match
    and the visiting order (:func:`score_order`)."""
    n = len(best.best_gt)
    tp = np.zeros(n, dtype=bool)
    if n == 0:
        return tp
    g = best.best_gt[order]
    eligible = np.flatnonzero((g >= 0) & (best.best_iou[order] >= threshold))
    # Only eligible detections ever claim their ground truth, so the true positives are exactly the first
    # eligible detection (in visiting order) per ground truth; a ground-truth index identifies its image
    # and class, so no other key is needed. np.unique's return_index gives first occurrences.
    _, first = np.unique(g[eligible], return_index=True)
    tp[order[eligible[first]]] = True
    return tp


def true_positives_ignoring(best: BestMatch, order: np.ndarray, threshold: float, gt_ignore: np.ndarray,
                            det_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tp, ignored) bool [N] (input order) at one IoU threshold when some ground truth and detections are to be
    ignored (COCO's area rule, with the VOC devkit's "difficult" semantics):

    - a detection whose best ground truth overlaps at the threshold but is ignored (``gt_ignore``) is ignored,
      whether or not that ground truth was already matched (the devkit skips difficult objects so);
    - otherwise the usual greedy rule (:func:`true_positives`) decides TP or FP, ignored ground truth never
      being claimed;
    - a detection that is not a TP and is itself to be ignored (``det_ignore``: outside the area range) is
      ignored, as COCOeval ignores unmatched detections outside the range.
    """
    n = len(best.best_gt)
    tp = np.zeros(n, dtype=bool)
    if n == 0:
        return tp, np.zeros(0, dtype=bool)
    g = best.best_gt[order]
    overlaps = (g >= 0) & (best.best_iou[order] >= threshold)
    on_ignored = np.zeros(n, dtype=bool)
    on_ignored[overlaps] = np.asarray(gt_ignore, bool)[g[overlaps]]
    eligible = np.flatnonzero(overlaps & ~on_ignored)
    _, first = np.unique(g[eligible], return_index=True)
    tp[order[eligible[first]]] = True
    ignored = np.zeros(n, dtype=bool)
    ignored[order] = on_ignored
    ignored |= ~tp & np.asarray(det_ignore, bool)
    return tp, ignored


def as_iou_thresholds(iou: float | Sequence[float]) -> tuple[float, ...]:
    """One threshold or several as a tuple of floats; ValueError when empty or outside (0, 1]."""
    ts = tuple(float(t) for t in np.atleast_1d(np.asarray(iou, dtype=np.float64)))
    if not ts:
        raise InputError(None, "at least one IoU threshold is needed")
    for t in ts:
        # IoU >= 0 would make any same-class detection in an image with ground truth a hit.
        if not (0.0 < t <= 1.0):
            raise InputError(None, f"IoU threshold {t:g} is outside (0, 1]")
    return ts


@dataclass(frozen=True)
class MatchResult:
    """Greedy matching of detections at one or more IoU thresholds; arrays are in detection input order.

    tp: bool [N, T], true positive at threshold ``thresholds[t]``. best_gt / best_iou: see
    :class:`BestMatch`. order: int64 [N] the visiting order (class, then descending score, stable).
    """

    thresholds: tuple[float, ...]
    tp: np.ndarray
    best_gt: np.ndarray
    best_iou: np.ndarray
    order: np.ndarray


def match(gt: Detections, det: Detections, iou: float | Sequence[float]) -> MatchResult:
    """VOC greedy matching (module docstring) of ``det`` against ``gt`` at each IoU threshold in ``iou``.

    >>> gt = Detections([[0, 0, 10, 10], [0, 0, 10, 10]], score=[1, 1], class_id=[0, 0], image=[0, 1])
    >>> det = Detections([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]], score=[0.9, 0.8, 0.7],
    ...                  class_id=[0, 0, 0], image=[0, 1, 1])
    >>> m = match(gt, det, iou=[0.5, 0.75])
    >>> m.tp.tolist()  # per detection (input order), per threshold
    [[True, True], [False, False], [True, False]]
    >>> m.best_iou.tolist()
    [1.0, 0.0, 0.5]
    """
    ts = as_iou_thresholds(iou)
    best = best_ground_truth(gt, det)
    order = score_order(det)
    tp = np.stack([true_positives(best, order, t) for t in ts], axis=1) if len(det) else \
        np.zeros((0, len(ts)), dtype=bool)
    return MatchResult(ts, tp, best.best_gt, best.best_iou, order)


def match_detections(gt: Detections, det: Detections, iou: float) -> Detections:
    """``det`` with ``extra`` arrays ``tp`` (bool), ``iou`` (best IoU, float) and ``gt_index`` (int, -1 when
    none) from greedy matching at a single IoU threshold."""
    m = match(gt, det, iou)
    return det.with_extra(tp=m.tp[:, 0], iou=m.best_iou, gt_index=m.best_gt)
