"""The detection cap: at most N boxes per image, the highest scores kept (COCO's maxDets, detectors' top-k).

A run applies it per image over all the image's classes, separately for every (method, protocol, percentile)
cell of boxes (``BoxParams.max_dets``; 0 = no cap). Tie rule at the N-th score: among boxes of equal score,
the one earlier in the cell's order is kept, the cell's order being the order boxes are cut in (image, then
class, then the raster order of each component's first pixel). The kept boxes keep that order, so a cell in
which no image exceeds N is returned unchanged, bit for bit.

Numpy and a compiled selection (:func:`surgery_core.eval.cutter.cap_keep`; no torch): a metric-layer helper.
"""

from __future__ import annotations

import numpy as np

from surgery_core.data.detections import Detections


def cap_indices(image: np.ndarray, score: np.ndarray, max_dets: int) -> np.ndarray | None:
    """Indices (ascending) of the boxes kept by a cap of ``max_dets`` per image, or None when none is dropped.

    image: int [N] image of each box (any order: boxes of one image need not be adjacent). score: float [N].
    max_dets: the cap, 0 = none. Ties at the cap's edge keep the earlier box (see the module note).
    """
    image = np.asarray(image).reshape(-1)
    score = np.asarray(score, np.float64).reshape(-1)
    n = len(image)
    if max_dets <= 0 or n <= max_dets:
        return None
    uniq, counts = np.unique(image, return_counts=True)
    if counts.max() <= max_dets:
        return None
    if not np.isnan(score).any():  # ordered scores: a linear-time selection per image, compiled
        from surgery_core.eval import cutter

        order = np.argsort(image, kind="stable")  # boxes of one image together, in their order
        keep = cutter.cap_keep(np.ascontiguousarray(image[order]), np.ascontiguousarray(score[order]), max_dets)
        return np.sort(order[keep])
    # NaN scores (ranked last, as numpy sorts them): descending score, stable (earlier box first on ties), then
    # stable by image: within each image the boxes are in the order the cap ranks them.
    by_score = np.argsort(-score, kind="stable")
    order = by_score[np.argsort(image[by_score], kind="stable")]
    starts = np.repeat(np.cumsum(counts) - counts, counts)  # first position of each box's image in ``order``
    rank = np.arange(n) - starts
    return np.sort(order[rank < max_dets])


def cap_detections(det: Detections, max_dets: int) -> Detections:
    """``det`` with at most ``max_dets`` boxes per image (:func:`cap_indices`); ``det`` itself when none drops."""
    keep = cap_indices(det.image, det.score, max_dets)
    return det if keep is None else det[keep]
