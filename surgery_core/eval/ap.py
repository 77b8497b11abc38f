"""Average precision over :class:`~surgery_core.data.detections.Detections`: VOC07 11-point, VOC2010+
all-point, and COCO (through faster-coco-eval).

All functions are pure. AP values are fractions in [0, 1] (not percent). IoU thresholds are fractions in
(0, 1]. Box coordinates are continuous ``xyxy`` pixels.

- ``voc07`` and ``voc``: greedy matching of :mod:`surgery_core.eval.matching` (PASCAL devkit ``voc_eval.py``
  with ``>=`` and continuous coordinates), then the devkit's ``voc_ap`` formulas verbatim: 11-point
  takes, for each recall level in ``np.arange(0., 1.1, 0.1)``, the maximum precision at recall >= that
  level (0 if none) and averages the 11 values; all-point takes the area under the monotone precision
  envelope over the recall steps. Note that ``np.arange`` makes some levels a hair above the decimal
  (0.30000000000000004): this is what the devkit does, so we do it too.
- ``coco``: COCO's own evaluation (101 recall points, matching to the best still-unmatched ground truth,
  at most 100 detections per image and class, area range "all"), computed by faster-coco-eval's
  ``COCOeval_faster`` from in-memory dicts, not re-implemented here.

AP by object size (``area="small" | "medium" | "large"``, :data:`AREA_RANGES`, COCO's bounds 32^2 and 96^2 px^2 of
the original image) follows COCO's rule for every interpolation: ground truth outside the range is ignored (not a
miss), a detection matched to ignored ground truth is ignored, and an unmatched detection outside the range is
ignored (not a false positive). For ``coco`` it is COCOeval's own ``areaRng`` (APs/APm/APl); for the VOC
interpolations the ignored ground truth plays the devkit's "difficult" role: a detection whose best ground truth
(over all of its class in the image) is ignored and overlaps at the threshold is neither a TP nor an FP.

mAP is the mean over the classes that have ground truth (and, with several IoU thresholds, over those
thresholds too). Classes without ground truth have AP NaN and are left out of every mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from surgery_core.data.detections import Detections
from surgery_core.eval.matching import (BestMatch, as_iou_thresholds, best_ground_truth, box_area, score_order,
                                        true_positives, true_positives_ignoring)
from surgery_core.eval.results import iou_key, none_if_nan

Interp = Literal["voc07", "voc", "coco"]
INTERPS: tuple[str, ...] = ("voc07", "voc", "coco")
# COCO's default thresholds, built the way pycocotools builds them (linspace, not arange).
COCO_IOUS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
COCO_RECALLS: np.ndarray = np.linspace(0.0, 1.0, 101)
# COCO's "all" area range and the per-image detection cap used for its headline AP.
_COCO_AREA_ALL = [0.0, 1e5 ** 2]
_COCO_MAX_DETS = 100
#: COCO's object-size buckets (pycocotools ``Params.areaRng`` / ``areaRngLbl``), box area in px^2 of the original
#: image. Both bounds are inclusive, as COCOeval compares (``area < lo or area > hi`` is outside), so an object of
#: exactly 32^2 or 96^2 px^2 belongs to two buckets.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}
SIZES: tuple[str, ...] = ("small", "medium", "large")


@dataclass(frozen=True)
class APResult:
    """Average precision per IoU threshold and class.

    interp: "voc07" | "voc" | "coco". iou_thresholds: the T thresholds used, in the order given.
    ap: float64 [T, K], AP per threshold and class, NaN for classes without ground truth.
    mAP: float, mean over classes with ground truth and over thresholds (for "coco" exactly COCOeval's
    ``stats[0]`` formula: the mean of every valid entry of the precision table); NaN when no class has
    ground truth. n_gt / n_det: int64 [K], ground-truth boxes and detections per class.
    recall / precision: per threshold t and class k, ``recall[t][k]`` and ``precision[t][k]`` are 1-D
    arrays describing the precision-recall curve. For VOC they are the raw cumulative values after each
    detection of that class in descending score order (empty when the class has no detection or no
    ground truth); for COCO, recall is the 101 recall levels and precision COCO's interpolated
    precision there (empty when the class has no ground truth).
    """

    interp: str
    iou_thresholds: tuple[float, ...]
    ap: np.ndarray
    mAP: float
    n_gt: np.ndarray
    n_det: np.ndarray
    recall: tuple[tuple[np.ndarray, ...], ...]
    precision: tuple[tuple[np.ndarray, ...], ...]

    @property
    def num_classes(self) -> int:
        return self.ap.shape[1]

    @property
    def per_class_ap(self) -> np.ndarray:
        """float64 [K]: AP of each class averaged over the thresholds (NaN without ground truth)."""
        return self.ap.mean(axis=0)

    @property
    def map_per_iou(self) -> np.ndarray:
        """float64 [T]: mAP at each threshold (mean over classes with ground truth; NaN if none)."""
        valid = self.n_gt > 0
        if not valid.any():
            return np.full(len(self.iou_thresholds), np.nan)
        return self.ap[:, valid].mean(axis=1)

    def to_dict(self, class_names: Sequence[str], curves: bool = False) -> dict:
        """JSON-ready summary keyed by class name; NaN becomes None. ``curves`` adds the PR curves."""
        names = list(class_names)
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        keys = [iou_key(t) for t in self.iou_thresholds]
        per_class = {}
        for k, name in enumerate(names):
            entry = {
                "AP": none_if_nan(self.per_class_ap[k]),
                "AP_per_iou": {key: none_if_nan(self.ap[t, k]) for t, key in enumerate(keys)},
                "n_gt": int(self.n_gt[k]),
                "n_det": int(self.n_det[k]),
            }
            if curves:
                entry["curves"] = {
                    key: {"recall": [none_if_nan(v) for v in self.recall[t][k]],
                          "precision": [none_if_nan(v) for v in self.precision[t][k]]}
                    for t, key in enumerate(keys)
                }
            per_class[name] = entry
        return {
            "interp": self.interp,
            "iou": [float(t) for t in self.iou_thresholds],
            "mAP": none_if_nan(self.mAP),
            "mAP_per_iou": {key: none_if_nan(v) for key, v in zip(keys, self.map_per_iou)},
            "n_classes_with_gt": int((self.n_gt > 0).sum()),
            "per_class": per_class,
        }


def _check(gt: Detections, det: Detections, num_classes: int) -> None:
    for name, d in (("ground truth", gt), ("detections", det)):
        if len(d) and (d.class_id.min() < 0 or d.class_id.max() >= num_classes):
            raise ValueError(f"{name} has class ids outside [0, {num_classes})")
    if len(det) and not np.isfinite(det.score).all():
        raise ValueError("detection scores must be finite")


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """The devkit's ``voc_ap``: AP from cumulative recall/precision arrays in descending score order.

    use_07_metric: 11-point interpolation (VOC2007); else all-point area under the precision envelope.
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        # max precision at recall >= t is a suffix maximum, since recall never decreases.
        suffix_max = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):   # the devkit's levels, arange rounding included
            i = int(np.searchsorted(rec, t, side="left"))
            p = suffix_max[i] if i < len(rec) else 0.0
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass(frozen=True)
class VocMatch:
    """What VOC-style AP needs from matching, at any IoU threshold and either interpolation: each
    detection's best ground truth and the visiting order (class, then descending score)."""

    best: BestMatch
    order: np.ndarray


def voc_match(gt: Detections, det: Detections) -> VocMatch:
    """The threshold-free part of VOC matching, to reuse across IoU thresholds and interpolations."""
    return VocMatch(best_ground_truth(gt, det), score_order(det))


def area_range(area: str | tuple[float, float] | None) -> tuple[float, float] | None:
    """``(lo, hi)`` px^2 of a size bucket name (:data:`AREA_RANGES`) or a pair; None for None or "all"."""
    if area is None or area == "all":
        return None
    if isinstance(area, str):
        if area not in AREA_RANGES:
            raise ValueError(f"area must be one of {tuple(AREA_RANGES)}, not {area!r}")
        return AREA_RANGES[area]
    lo, hi = (float(v) for v in area)
    if not 0.0 <= lo <= hi:
        raise ValueError(f"area range {area!r} must satisfy 0 <= lo <= hi")
    return lo, hi


def in_area(xyxy: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    """bool [N]: boxes whose area (w * h, px^2) lies in ``rng``, both bounds inclusive (COCOeval's test)."""
    a = box_area(xyxy)
    return (a >= rng[0]) & (a <= rng[1])


def _evaluate_voc(gt: Detections, det: Detections, num_classes: int, ts: tuple[float, ...],
                  use_07: bool, match: VocMatch | None = None, area: tuple[float, float] | None = None) -> APResult:
    gt_out = None if area is None else ~in_area(gt.xyxy, area)
    det_out = None if area is None else ~in_area(det.xyxy, area)
    n_gt = np.bincount(gt.class_id if gt_out is None else gt.class_id[~gt_out],
                       minlength=num_classes).astype(np.int64)
    n_det = np.bincount(det.class_id if det_out is None else det.class_id[~det_out],
                        minlength=num_classes).astype(np.int64)
    match = voc_match(gt, det) if match is None else match
    best, order = match.best, match.order
    cls_sorted = det.class_id[order]
    lo = np.searchsorted(cls_sorted, np.arange(num_classes), side="left")
    hi = np.searchsorted(cls_sorted, np.arange(num_classes), side="right")
    ap = np.full((len(ts), num_classes), np.nan)
    recalls, precisions = [], []
    empty = np.zeros(0)
    for ti, t in enumerate(ts):
        if area is None:
            tp_sorted, kept_sorted = true_positives(best, order, t)[order], None
        else:
            tp, ignored = true_positives_ignoring(best, order, t, gt_out, det_out)
            tp_sorted, kept_sorted = tp[order], ~ignored[order]
        rec_t, prec_t = [], []
        for k in range(num_classes):   # a loop over classes only; each step is vectorised
            if n_gt[k] == 0:
                rec_t.append(empty)
                prec_t.append(empty)
                continue
            seq = tp_sorted[lo[k]:hi[k]]
            if kept_sorted is not None:  # ignored detections leave the ranking (COCO's area rule)
                seq = seq[kept_sorted[lo[k]:hi[k]]]
            tp = np.cumsum(seq).astype(np.float64)
            fp = np.arange(1, len(tp) + 1, dtype=np.float64) - tp
            rec = tp / float(n_gt[k])
            # The devkit guards tp + fp == 0 with eps; here tp + fp is the rank, always >= 1.
            prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap[ti, k] = voc_ap(rec, prec, use_07)
            rec_t.append(rec)
            prec_t.append(prec)
        recalls.append(tuple(rec_t))
        precisions.append(tuple(prec_t))
    per_class = ap.mean(axis=0)
    valid = n_gt > 0
    m = float(per_class[valid].mean()) if valid.any() else float("nan")
    return APResult("voc07" if use_07 else "voc", ts, ap, m, n_gt, n_det,
                    tuple(recalls), tuple(precisions))


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    out = xyxy.copy()
    out[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    return out


def coco_dicts(gt: Detections, det: Detections, num_classes: int) -> tuple[dict, dict]:
    """In-memory COCO ground-truth and result datasets for ``gt`` / ``det``.

    Ids are stable and 1-based: image id = image index + 1, category id = class id + 1, annotation id =
    position + 1 (COCO treats id 0 as "unmatched"). Boxes become xywh with area = w * h, iscrowd 0. Every
    image with a ground truth or a detection is listed, so detections on images without ground truth
    count as false positives.
    """
    images = np.union1d(gt.image, det.image)
    image_list = [{"id": i} for i in (images + 1).tolist()]
    cats = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]

    def anns(d: Detections, with_score: bool) -> list[dict]:
        b = _xywh(d.xyxy)
        area = (b[:, 2] * b[:, 3]).tolist()
        cols = zip(range(1, len(d) + 1), (d.image + 1).tolist(), (d.class_id + 1).tolist(), b.tolist(), area)
        if with_score:
            return [{"id": i, "image_id": im, "category_id": c, "bbox": bb, "area": a, "iscrowd": 0, "score": s}
                    for (i, im, c, bb, a), s in zip(cols, d.score.tolist())]
        return [{"id": i, "image_id": im, "category_id": c, "bbox": bb, "area": a, "iscrowd": 0}
                for i, im, c, bb, a in cols]

    gt_ds = {"images": image_list, "categories": cats, "annotations": anns(gt, False)}
    dt_ds = {"images": image_list, "categories": cats, "annotations": anns(det, True)}
    return gt_ds, dt_ds


def _silent(*_args, **_kwargs) -> None:
    return None


def _evaluate_coco(gt: Detections, det: Detections, num_classes: int, ts: tuple[float, ...],
                   area: tuple[float, float] | None = None) -> APResult:
    from faster_coco_eval import COCO, COCOeval_faster

    if area is None:
        n_gt = np.bincount(gt.class_id, minlength=num_classes).astype(np.int64)
        n_det = np.bincount(det.class_id, minlength=num_classes).astype(np.int64)
    else:
        n_gt = np.bincount(gt.class_id[in_area(gt.xyxy, area)], minlength=num_classes).astype(np.int64)
        n_det = np.bincount(det.class_id[in_area(det.xyxy, area)], minlength=num_classes).astype(np.int64)
    T, K = len(ts), num_classes
    ap = np.full((T, K), np.nan)
    recalls = tuple(tuple(COCO_RECALLS.copy() if n_gt[k] else np.zeros(0) for k in range(K)) for _ in ts)
    if len(gt) == 0:
        # Nothing to recall: every class is NaN. COCOeval would also report -1 everywhere.
        precisions = tuple(tuple(np.zeros(0) for _ in range(K)) for _ in ts)
        return APResult("coco", ts, ap, float("nan"), n_gt, n_det, recalls, precisions)

    gt_ds, dt_ds = coco_dicts(gt, det, num_classes)
    coco_gt = COCO(gt_ds, print_function=_silent)
    coco_dt = COCO(dt_ds, print_function=_silent)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_silent)
    # Only what the headline AP needs: area "all", 100 detections per image and class. Set after
    # construction because passing ranges={} makes the library log a warning.
    ev.params.iouThrs = np.asarray(ts, dtype=np.float64)
    ev.params.areaRng = [list(_COCO_AREA_ALL) if area is None else list(area)]
    ev.params.areaRngLbl = ["all" if area is None else "range"]
    ev.params.maxDets = [_COCO_MAX_DETS]
    ev.params.catIds = list(range(1, K + 1))
    ev.evaluate()
    ev.accumulate()
    prec = np.asarray(ev.eval["precision"])[:, :, :, 0, -1]      # [T, R, K]
    # stats[0] of COCOeval.summarize(): mean over every valid (> -1) precision entry.
    valid = prec > -1
    m = float(np.mean(prec[valid])) if valid.any() else float("nan")
    has_gt = n_gt > 0
    ap[:, has_gt] = prec[:, :, has_gt].mean(axis=1)
    precisions = tuple(tuple(prec[t, :, k].copy() if has_gt[k] else np.zeros(0) for k in range(K))
                       for t in range(T))
    return APResult("coco", ts, ap, m, n_gt, n_det, recalls, precisions)


def evaluate(gt: Detections, det: Detections, num_classes: int,
             iou: float | Sequence[float] | None = None, interp: Interp = "voc07",
             match: VocMatch | None = None, area: str | tuple[float, float] | None = None) -> APResult:
    """AP of ``det`` against ``gt`` for classes ``0..num_classes-1``.

    iou: one threshold or several; default 0.5 for VOC, COCO's .50:.05:.95 for "coco".
    interp: "voc07" (11-point), "voc" (all-point, VOC2010+) or "coco" (faster-coco-eval).
    match: :func:`voc_match` of these very ``gt`` and ``det``, when already computed (VOC interps only;
    matching is most of the cost, and it does not depend on the threshold, the interpolation or the area).
    area: None or "all", a bucket of :data:`AREA_RANGES` ("small", "medium", "large") or a ``(lo, hi)`` px^2
    pair: AP over objects of that size under COCO's ignore rule (module docstring); ``n_gt`` / ``n_det`` then
    count the boxes inside the range.
    Raises ValueError for an unknown interp, thresholds outside (0, 1], class ids outside the range or
    non-finite scores.

    Two objects of one class; a hit on the first, a miss and a half-overlapping box (IoU 0.5) on the second:

    >>> gt = Detections([[0, 0, 10, 10], [0, 0, 10, 10]], score=[1, 1], class_id=[0, 0], image=[0, 1])
    >>> det = Detections([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]], score=[0.9, 0.8, 0.7],
    ...                  class_id=[0, 0, 0], image=[0, 1, 1])
    >>> r = evaluate(gt, det, num_classes=1, iou=0.5, interp="voc07")
    >>> round(r.mAP, 4), r.n_gt.tolist(), r.n_det.tolist()
    (0.8485, [2], [3])
    >>> round(evaluate(gt, det, 1, iou=0.5, interp="voc").mAP, 4)  # all-point
    0.8333
    """
    if interp not in INTERPS:
        raise ValueError(f"interp must be one of {INTERPS}, not {interp!r}")
    if iou is None:
        iou = COCO_IOUS if interp == "coco" else 0.5
    ts = as_iou_thresholds(iou)
    rng = area_range(area)
    _check(gt, det, num_classes)
    if interp == "coco":
        return _evaluate_coco(gt, det, num_classes, ts, rng)
    if match is not None and len(match.order) != len(det):
        raise ValueError(f"match is for {len(match.order)} detections, not {len(det)}")
    return _evaluate_voc(gt, det, num_classes, ts, use_07=(interp == "voc07"), match=match, area=rng)


def size_counts(gt: Detections, num_classes: int) -> np.ndarray:
    """int64 [len(SIZES), K]: ground-truth boxes of each class in each COCO size bucket (inclusive bounds, so a box
    of exactly 32^2 or 96^2 px^2 counts in two buckets, as COCOeval evaluates it)."""
    return np.stack([np.bincount(gt.class_id[in_area(gt.xyxy, AREA_RANGES[s])], minlength=num_classes)
                     for s in SIZES]).astype(np.int64).reshape(len(SIZES), num_classes)


def size_note(size: str) -> str:
    """The size bucket in words, for captions: ``small objects (area <= 32^2 px^2 ...)``."""
    if size in (None, "all"):
        return "all object sizes"
    lo, hi = AREA_RANGES[size]
    rng = f"area <= {hi:g} px2" if lo == 0 else (f"area >= {lo:g} px2" if size == "large" else
                                                  f"{lo:g} <= area <= {hi:g} px2")
    return (f"{size} objects only ({rng} of the original image, COCO's bounds; GT outside ignored, detections "
            "matched to it or unmatched outside the range ignored)")
