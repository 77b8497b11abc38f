"""Heatmap quality per image and class, and the seed's quality table over a dataset (docs/DESIGN.md
section 5).

The seed's ``analyze_heatmap_quality`` reported, per heatmap percentile threshold, the mean and max
best-box IoU, the mean number of boxes and the activation ratio, plus the raw similarity inside ground-truth
boxes (0.18 +- 0.02 on its 10 images). This module computes those figures and adds the pointing game and
the energy pointing game. Everything is a pure function of numpy arrays; results are plain dataclasses and
dicts that serialise to JSON.

Conventions (all at the working resolution of :mod:`surgery_core.eval.maps`, i.e. ``params.box_resolution``):

- *working map*: the grid min-max normalised to 0-1, then upsampled; *raw map*: the grid upsampled without
  normalisation (raw similarity units).
- *inside a GT box*: a working pixel whose centre lies in the half-open box ``[x1, x2) x [y1, y2)`` in
  original-image pixels (:func:`surgery_core.eval.maps.box_mask`); a box too small to hold a pixel centre claims
  the pixel under its own centre. Several GT boxes of a class form one union.
- *pointing game* point: the centroid of the working pixels that share the map's maximum value (ties occur
  on the flat margins bilinear upsampling leaves along the image border; a constant map points at the
  image centre), in original-image pixels. It is a hit when it lies in a GT box of the class enlarged on
  every side by ``tolerance_px_at_224 * image_w / 224`` horizontally and ``* image_h / 224`` vertically
  (closed intervals): 15 px on a 224-pixel image, 53.6 px on DIOR's 800. The tolerance follows the image's
  size, not the working resolution.
- *energy pointing game*: the sum of the 0-1 working map over the union of the class's GT boxes divided by
  its sum over the whole map; a constant map (all zeros after normalisation) counts as uniform, so it
  scores the union's share of the pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from surgery_core.data.detections import Detections
from surgery_core.eval.boxes import BoxParams, as_cut, cut, cut_thresholds
from surgery_core.eval.maps import box_mask, image_scale, raw_working_map, working_map
from surgery_core.eval.matching import box_iou
from surgery_core.parallel import resolve_workers, spawn_map

#: The pointing game's customary tolerance, in pixels of a 224-pixel image.
DEFAULT_TOLERANCE_PX_AT_224 = 15.0

#: Percentiles of the seed's quality table.
SEED_QUALITY_PERCENTILES: tuple[float, ...] = (75.0, 80.0, 85.0, 90.0, 95.0)


def best_box_iou(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> float:
    """Largest IoU of any predicted box with any GT box (same image and class); 0 when either is empty."""
    iou = box_iou(pred_xyxy, gt_xyxy)
    return float(iou.max()) if iou.size else 0.0


def pointing_point(wmap: np.ndarray, image_w: int, image_h: int,
                   box_resolution: int | None) -> tuple[float, float]:
    """Where the map points, ``(x, y)`` in original-image pixels: centroid of its maximal working pixels."""
    sx, sy = image_scale(image_w, image_h, box_resolution)
    rows, cols = np.nonzero(wmap == wmap.max())
    return float((cols.mean() + 0.5) * sx), float((rows.mean() + 0.5) * sy)


def pointing_hit(point: tuple[float, float], gt_xyxy: np.ndarray, image_w: int, image_h: int,
                 tolerance_px_at_224: float = DEFAULT_TOLERANCE_PX_AT_224) -> bool:
    """Whether ``point`` (original-image px) lies in a GT box enlarged by the tolerance (see module doc)."""
    gt = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
    tx = tolerance_px_at_224 * image_w / 224.0
    ty = tolerance_px_at_224 * image_h / 224.0
    x, y = point
    inside = (gt[:, 0] - tx <= x) & (x <= gt[:, 2] + tx) & (gt[:, 1] - ty <= y) & (y <= gt[:, 3] + ty)
    return bool(inside.any())


def energy_share(wmap: np.ndarray, inside: np.ndarray) -> float:
    """Energy pointing game: share (0-1) of the 0-1 map's sum on the ``inside`` pixels (bool, map-shaped)."""
    total = float(wmap.sum(dtype=np.float64))
    if total <= 0.0:
        return float(inside.mean())
    return float(wmap.sum(where=inside, dtype=np.float64) / total)


@dataclass(frozen=True)
class PairQuality:
    """Quality of one image's heatmap for one class that has ground truth.

    Per percentile (same order as ``percentiles``): ``best_iou`` (0-1), ``n_boxes``, ``activation_ratio``
    (share of working pixels ``>=`` the threshold, before morphology). Once per pair: ``gt_mean`` and
    ``gt_max`` (raw similarity inside the class's GT boxes), ``pointing_hit``, ``energy`` (0-1).
    ``image`` is the dataset image index, ``class_id`` the index into the run's class list.
    """

    image: int
    class_id: int
    percentiles: tuple[float, ...]
    best_iou: tuple[float, ...]
    n_boxes: tuple[int, ...]
    activation_ratio: tuple[float, ...]
    gt_mean: float
    gt_max: float
    pointing_hit: bool
    energy: float

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def heatmap_quality(grid2d: np.ndarray, image_w: int, image_h: int, gt_xyxy: np.ndarray, params: BoxParams,
                    percentiles: Sequence[float] = SEED_QUALITY_PERCENTILES, *,
                    tolerance_px_at_224: float = DEFAULT_TOLERANCE_PX_AT_224,
                    image: int = -1, class_id: int = -1) -> PairQuality:
    """Quality figures of one raw grid ``[grid_h, grid_w]`` against the GT boxes of its class.

    image_w, image_h: original image size in pixels; gt_xyxy: ``[m >= 1, 4]`` GT boxes of this class in
    original-image pixels. Boxes are cut with ``params`` at each of ``percentiles`` (``params.percentile``
    is ignored); ``params.box_resolution`` sets the working resolution of every figure.
    """
    gt = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
    if not len(gt):
        raise ValueError("heatmap quality needs at least one ground-truth box of the class")
    raw = raw_working_map(grid2d, image_w, image_h, params.box_resolution)
    wmap = working_map(grid2d, image_w, image_h, params.box_resolution)
    inside = box_mask(gt, image_w, image_h, params.box_resolution)

    percentiles = tuple(as_cut(p) for p in percentiles)  # a BoxRule may stand for a percentile
    thresholds = cut_thresholds(wmap, percentiles)
    boxes = cut(wmap, thresholds, image_w, image_h, params).per_threshold(len(thresholds))
    n_px = wmap.size
    return PairQuality(
        image=int(image), class_id=int(class_id), percentiles=percentiles,
        best_iou=tuple(best_box_iou(xyxy, gt) for xyxy, _ in boxes),
        n_boxes=tuple(int(len(score)) for _, score in boxes),
        activation_ratio=tuple(float(np.count_nonzero(wmap >= t) / n_px) for t in thresholds),
        gt_mean=float(raw.mean(where=inside, dtype=np.float64)),
        gt_max=float(raw[inside].max()),
        pointing_hit=pointing_hit(pointing_point(wmap, image_w, image_h, params.box_resolution), gt,
                                  image_w, image_h, tolerance_px_at_224),
        energy=energy_share(wmap, inside),
    )


def quality_records(grids: Sequence[np.ndarray], image_sizes: np.ndarray, gt: Detections, params: BoxParams,
                    percentiles: Sequence[float] = SEED_QUALITY_PERCENTILES, *,
                    image_ids: np.ndarray | None = None,
                    tolerance_px_at_224: float = DEFAULT_TOLERANCE_PX_AT_224,
                    workers: int = 1) -> list[PairQuality]:
    """:func:`heatmap_quality` for every (image, class) pair that has ground truth ("present" pairs).

    grids: per image a raw ``[num_classes, grid_h, grid_w]`` array; image_sizes: ``[N, 2]`` original
    ``(width, height)``; gt: ground truth whose ``image`` holds dataset image indices, matched to rows
    through ``image_ids`` (default: row = image index). GT of images without a grid is ignored.
    Records come sorted by image, then class. workers: processes, as in
    :func:`surgery_core.eval.cutting.detections_at`.
    """
    sizes = np.asarray(image_sizes, np.int64).reshape(-1, 2)
    ids = np.arange(len(grids)) if image_ids is None else np.asarray(image_ids, np.int64)
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    order = np.lexsort((gt.class_id, gt.image))
    img, cls, xyxy = gt.image[order], gt.class_id[order], gt.xyxy[order]
    starts = np.flatnonzero(np.r_[True, (img[1:] != img[:-1]) | (cls[1:] != cls[:-1])]) if len(img) else []
    ends = list(starts[1:]) + [len(img)]
    tasks = []
    for s, e in zip(starts, ends):
        row = row_of.get(int(img[s]))
        if row is not None:
            w, h = sizes[row]
            tasks.append((np.asarray(grids[row], np.float32)[int(cls[s])], int(w), int(h), xyxy[s:e],
                          int(img[s]), int(cls[s])))
    percentiles = tuple(float(p) for p in percentiles)
    workers = resolve_workers(workers)
    if workers == 1 or len(tasks) < 2:
        return _quality_chunk(tasks, params, percentiles, tolerance_px_at_224)
    size = -(-len(tasks) // (4 * workers))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    parts = spawn_map(_quality_chunk, chunks, [params] * len(chunks), [percentiles] * len(chunks),
                      [tolerance_px_at_224] * len(chunks), workers=workers)
    return [rec for part in parts for rec in part]


def _quality_chunk(tasks: list, params: BoxParams, percentiles: tuple[float, ...],
                   tolerance_px_at_224: float) -> list[PairQuality]:
    """Run :func:`heatmap_quality` over ``(grid2d, image_w, image_h, gt_xyxy, image, class_id)`` tasks."""
    return [heatmap_quality(g, w, h, boxes, params, percentiles, tolerance_px_at_224=tolerance_px_at_224,
                            image=i, class_id=c) for g, w, h, boxes, i, c in tasks]


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _std(x) -> float | None:
    # Population standard deviation (numpy's default), as the seed's "mean +- std".
    return float(np.std(x)) if len(x) else None


def aggregate_quality(records: Sequence[PairQuality], class_names: Sequence[str] | None = None) -> dict:
    """The seed's quality table and the pointing games over many pairs, as a JSON-ready dict.

    Keys: ``n_pairs``; ``by_percentile``: one row per percentile with ``mean_best_iou``, ``max_best_iou``,
    ``mean_n_boxes``, ``mean_activation_ratio`` and ``per_class`` mean best IoU; ``gt_response`` (raw
    similarity): ``mean_mean``/``mean_std`` of the per-pair GT mean and ``max_mean``/``max_std`` of the
    per-pair GT max; ``pointing_game`` and ``energy_pointing_game``: ``overall`` (over pairs),
    ``mean_over_classes`` and ``per_class``. Classes are keyed by name when ``class_names`` is given, else
    by the class index as a string. Empty groups give None.
    """
    records = list(records)
    if records and len({r.percentiles for r in records}) > 1:
        raise ValueError("records were computed at different percentiles")
    percentiles = records[0].percentiles if records else ()

    def key(c: int) -> str:
        return class_names[c] if class_names is not None else str(c)

    classes = sorted({r.class_id for r in records})
    by_class = {c: [r for r in records if r.class_id == c] for c in classes}
    best = np.array([r.best_iou for r in records], np.float64).reshape(len(records), len(percentiles))
    nbox = np.array([r.n_boxes for r in records], np.float64).reshape(best.shape)
    act = np.array([r.activation_ratio for r in records], np.float64).reshape(best.shape)
    cls_arr = np.array([r.class_id for r in records], np.int64)

    rows = []
    for j, p in enumerate(percentiles):
        rows.append({
            "percentile": p,
            "mean_best_iou": _mean(best[:, j]),
            "max_best_iou": float(best[:, j].max()) if len(best) else None,
            "mean_n_boxes": _mean(nbox[:, j]),
            "mean_activation_ratio": _mean(act[:, j]),
            "per_class": {key(c): {"n": int((cls_arr == c).sum()), "mean_best_iou": _mean(best[cls_arr == c, j])}
                          for c in classes},
        })

    gt_mean = [r.gt_mean for r in records]
    gt_max = [r.gt_max for r in records]
    hits = {c: [r.pointing_hit for r in rs] for c, rs in by_class.items()}
    energy = {c: [r.energy for r in rs] for c, rs in by_class.items()}
    return {
        "n_pairs": len(records),
        "percentiles": list(percentiles),
        "by_percentile": rows,
        "gt_response": {"mean_mean": _mean(gt_mean), "mean_std": _std(gt_mean),
                        "max_mean": _mean(gt_max), "max_std": _std(gt_max)},
        "pointing_game": {
            "overall": _mean([r.pointing_hit for r in records]),
            "mean_over_classes": _mean([np.mean(h) for h in hits.values()]),
            "per_class": {key(c): {"n": len(h), "hits": int(sum(h)), "accuracy": _mean(h)}
                          for c, h in hits.items()},
        },
        "energy_pointing_game": {
            "overall": _mean([r.energy for r in records]),
            "mean_over_classes": _mean([np.mean(e) for e in energy.values()]),
            "per_class": {key(c): {"n": len(e), "mean": _mean(e)} for c, e in energy.items()},
        },
    }
