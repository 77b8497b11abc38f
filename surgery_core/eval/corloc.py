"""CorLoc, the localisation figure of the weakly supervised localisation and detection literature.

Definition (docs/DESIGN.md section 5, "CorLoc"), as Deselaers, Alexe and Ferrari (IJCV 2012, "Weakly supervised
localization and learning with generic knowledge") define it and OICR (Tang et al., CVPR 2017) and its successors on
DIOR and NWPU VHR-10 compute it (``github.com/ppengtang/oicr`` @ ``e46582d``, ``lib/datasets/dis_eval.py``): for each
class, over the images that contain at least one ground-truth object of the class, the fraction in which the
highest-scoring predicted box of that class overlaps some ground-truth box of the class with IoU at or above the
threshold (0.5 in the papers). An image of the class without any predicted box of the class is a miss. The mean
CorLoc is the mean over the classes that occur in at least one image.

This project's conventions replace the OICR script's two box conventions, as for AP (section 5): IoU ``>=`` the
threshold (the script: ``>``) and continuous coordinates (the script: +1 box sizes). On score ties the detection that
comes first in the input is the image's top box (a stable sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from surgery_core.data.detections import Detections
from surgery_core.eval.matching import as_iou_thresholds, best_ground_truth


@dataclass(frozen=True)
class CorLocResult:
    """CorLoc per IoU threshold and class.

    hits: int64 [T, K], images of class k whose top box of class k reaches ``iou_thresholds[t]``.
    n_images: int64 [K], images that contain class k. corloc: float64 [T, K] = hits / n_images (NaN when the
    class occurs in no image). mean: float64 [T], the mean over classes that occur (NaN when none does).
    """

    iou_thresholds: tuple[float, ...]
    hits: np.ndarray
    n_images: np.ndarray
    corloc: np.ndarray
    mean: np.ndarray


def top_boxes(det: Detections) -> np.ndarray:
    """Indices of the highest-scoring detection of each (image, class) that has detections (first on ties)."""
    if not len(det):
        return np.zeros(0, np.int64)
    by_score = np.argsort(-det.score, kind="stable")
    n_cls = int(det.class_id.max()) + 1
    key = det.image[by_score] * n_cls + det.class_id[by_score]
    order = by_score[np.argsort(key, kind="stable")]
    k = det.image[order] * n_cls + det.class_id[order]
    first = np.concatenate(([True], k[1:] != k[:-1]))
    return order[first]


def corloc(gt: Detections, det: Detections, num_classes: int, iou: float | Sequence[float] = 0.5) -> CorLocResult:
    """CorLoc of ``det`` against ``gt`` for classes ``0..num_classes-1`` (module docstring).

    iou: one threshold or several (fractions in (0, 1]). Images are ``Detections.image`` values: only the images
    that hold ground truth of a class count for that class, so detections on other images never matter.
    """
    ts = as_iou_thresholds(iou)
    for name, d in (("ground truth", gt), ("detections", det)):
        if len(d) and (d.class_id.min() < 0 or d.class_id.max() >= num_classes):
            raise ValueError(f"{name} has class ids outside [0, {num_classes})")
    # Images per class: distinct (image, class) pairs of the ground truth.
    pairs = np.unique(np.stack([gt.image, gt.class_id], axis=1), axis=0) if len(gt) else np.zeros((0, 2), np.int64)
    n_images = np.bincount(pairs[:, 1], minlength=num_classes).astype(np.int64)
    top = det[top_boxes(det)] if len(det) else det
    best = best_ground_truth(gt, top).best_iou  # 0 where the image has no ground truth of the box's class
    hits = np.zeros((len(ts), num_classes), np.int64)
    for ti, t in enumerate(ts):
        hits[ti] = np.bincount(top.class_id[best >= t], minlength=num_classes)[:num_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_images > 0, hits / np.maximum(n_images, 1), np.nan)
    valid = n_images > 0
    mean = rate[:, valid].mean(axis=1) if valid.any() else np.full(len(ts), np.nan)
    return CorLocResult(ts, hits, n_images, rate, mean)
