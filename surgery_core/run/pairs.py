"""Library results gathered per (image, class) pair of a run, for browsing and drawing single samples.

Nothing here computes a new figure: each table or panel gathers what :mod:`surgery_core.eval.quality`,
:mod:`surgery_core.eval.matching` and the run's boxes already define, keyed by (image, class), so that a viewer (the
dashboard's Browse, Compare and quality pages) shows exactly the numbers the reports contain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from surgery_core.data.detections import Detections
from surgery_core.eval.maps import working_map
from surgery_core.eval.matching import match_detections
from surgery_core.eval.quality import heatmap_quality, pointing_point, quality_records
from surgery_core.run.evaluation import box_params_for

if TYPE_CHECKING:
    from surgery_core.eval.ap import APResult
    from surgery_core.eval.protocols import Cell
    from surgery_core.run.facade import Run


def pair_quality(run: "Run", method: str) -> pd.DataFrame:
    """Per (image, class) pair with ground truth: pointing-game hit, energy share, GT response (raw similarity),
    from :func:`surgery_core.eval.quality.quality_records` with the run's box parameters (no percentile-dependent
    figures).

    Columns: image (dataset index), class_id, pointing_hit, energy, gt_mean, gt_max.
    """
    recs = quality_records(run.grids.grids[method], run.image_sizes(), run.gt, run.cfg.boxes, (),
                           image_ids=run.grids.rows, tolerance_px_at_224=run.cfg.pointing_tolerance_px_at_224)
    return pd.DataFrame({
        "image": [r.image for r in recs], "class_id": [r.class_id for r in recs],
        "pointing_hit": [r.pointing_hit for r in recs], "energy": [r.energy for r in recs],
        "gt_mean": [r.gt_mean for r in recs], "gt_max": [r.gt_max for r in recs],
    })


def pair_outcomes(run: "Run", cell: "Cell", iou: float, quality: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (image, class) pair with ground truth, for the boxes of one cell (method, protocol, cut): GT count,
    detections, true positives at ``iou`` (greedy matching over the whole run, as AP scores them), best IoU of any
    detection of the class in the image (0 without one), and the pair's pointing-game hit and energy (``quality``:
    :func:`pair_quality` of the same run and method, computed when not given).

    Columns: image (dataset index), image_id, class_id, class, n_gt, n_det, n_tp, best_iou, pointing_hit, energy.
    Detections in images or classes without ground truth are not counted (such pairs have no row).
    """
    gt = run.gt
    k = len(run.classes)
    det = match_detections(gt, run.boxes[cell], float(iou))
    gpair, n_gt = np.unique(gt.image * k + gt.class_id, return_counts=True)
    dpair = det.image * k + det.class_id
    pos = np.searchsorted(gpair, dpair)
    ok = (pos < len(gpair)) & (gpair[np.minimum(pos, len(gpair) - 1)] == dpair)
    n_det = np.bincount(pos[ok], minlength=len(gpair))
    n_tp = np.bincount(pos[ok], weights=det.extra["tp"][ok].astype(float), minlength=len(gpair)).astype(int)
    best = np.zeros(len(gpair))
    np.maximum.at(best, pos[ok], det.extra["iou"][ok])
    images, classes = gpair // k, gpair % k
    df = pd.DataFrame({
        "image": images, "image_id": [run.dataset.images[i].image_id for i in images], "class_id": classes,
        "class": [run.classes[c] for c in classes], "n_gt": n_gt, "n_det": n_det, "n_tp": n_tp, "best_iou": best,
    })
    q = pair_quality(run, cell.method) if quality is None else quality
    q = q[["image", "class_id", "pointing_hit", "energy"]]
    return df.merge(q, on=["image", "class_id"], how="left")


@dataclass
class Panel:
    """One method's view of one image and class: boxes with their match, and the heatmap's figures."""

    method: str
    map01: np.ndarray  # normalised grid upsampled to the image size (what is drawn)
    grid: np.ndarray  # raw similarity grid
    det: Detections  # boxes at the percentile, with extra ``tp`` / ``iou`` against the image's GT of the class
    point: tuple[float, float]  # pointing-game point, original px
    pointing_hit: bool | None  # None: no GT of the class in the image
    energy: float | None
    best_iou: float | None


def panel(run: "Run", cell: "Cell", image: int, cls: int, iou: float) -> Panel:
    """Everything a single-sample view shows for one cell (method, protocol, cut) on one image and class: the
    boxes of ``run.boxes_for`` at the cell's cut (any cut, cut live as the library cuts them) matched greedily at
    ``iou`` against the image's GT of the class; the pointing-game point of the working map; pointing hit, energy
    share and best-box IoU from :func:`surgery_core.eval.quality.heatmap_quality` (None when the class has no GT in
    the image)."""
    rec = run.dataset.images[image]
    method, percentile = cell.method, cell.cut
    params = box_params_for(run.cfg, cell.protocol).with_cut(percentile)
    grid = run.grid(method, image, cls)
    sel = rec.labels == cls
    m = int(sel.sum())
    det = run.boxes_for(method, image, cls, percentile, cell.protocol)
    gt = Detections(rec.xyxy[sel], np.ones(m), np.full(m, cls), np.full(m, image))
    det = match_detections(gt, det, float(iou))
    wmap = working_map(grid, rec.width, rec.height, params.box_resolution)
    point = pointing_point(wmap, rec.width, rec.height, params.box_resolution)
    hit = energy = best = None
    if m:
        q = heatmap_quality(grid, rec.width, rec.height, rec.xyxy[sel], params, (percentile,),
                            tolerance_px_at_224=run.cfg.pointing_tolerance_px_at_224)
        hit, energy, best = q.pointing_hit, q.energy, q.best_iou[0]
    return Panel(method, working_map(grid, rec.width, rec.height, None), grid, det, point, hit, energy, best)


def corloc_table(results: dict[str, "CorLocResult"], classes: tuple[str, ...]) -> pd.DataFrame:
    """Classes x methods CorLoc table (fractions, the results' first IoU) with the images that contain each class,
    classes in no image left out, and a ``mean`` row last (each method's mean over classes)."""
    methods = list(results)
    first = results[methods[0]]
    df = pd.DataFrame({"class": list(classes), "images": first.n_images.astype(int)})
    for m in methods:
        df[m] = results[m].corloc[0]
    df = df[df["images"] > 0].reset_index(drop=True)
    row = {"class": "mean", "images": int(first.n_images.sum())} | {m: float(results[m].mean[0]) for m in methods}
    return pd.concat([df, pd.DataFrame([row])], ignore_index=True)


def ap_table(results: dict[str, "APResult"], classes: tuple[str, ...]) -> pd.DataFrame:
    """Classes x methods AP table (fractions) with GT and detection counts, classes without GT left out, and an
    ``mAP`` row last (each method's ``APResult.mAP``, total GT and detections)."""
    methods = list(results)
    first = results[methods[0]]
    df = pd.DataFrame({"class": list(classes), "GT": first.n_gt.astype(int)})
    for m in methods:
        df[m] = results[m].per_class_ap
    for m in methods:
        df[f"det {m}"] = results[m].n_det.astype(int)
    df = df[df["GT"] > 0].reset_index(drop=True)
    row = {"class": "mAP", "GT": int(first.n_gt.sum())}
    row.update({m: results[m].mAP for m in methods})
    row.update({f"det {m}": int(results[m].n_det.sum()) for m in methods})
    return pd.concat([df, pd.DataFrame([row])], ignore_index=True)
