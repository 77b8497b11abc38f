"""From a run's stored grids to every number of the report: boxes per protocol, AP tables, sweeps, quality.

Protocols (docs/DESIGN.md section 5), named on every table:

- ``present`` (localisation, the seed's setting): boxes only for the classes annotated in each image,
  scored by the box rule of the run configuration;
- ``open`` (detection): boxes for every class on every image, each score multiplied by the image-level
  class probability (softmax over the class set of the CLS-text cosine, times the model's logit scale).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from surgery_core.data.datasets import Dataset
from surgery_core.data.detections import Detections
from surgery_core.eval.ap import AREA_RANGES, COCO_IOUS, SIZES, evaluate, size_counts, size_note, voc_match
from surgery_core.eval.boxes import BoxParams, BoxRule, as_cut, cut_label, cut_sort_key
from surgery_core.eval.cutting import cell_detections
from surgery_core.eval.maxdets import cap_detections
from surgery_core.eval.protocols import PROTOCOLS, Cell, ProtocolLike, protocol
from surgery_core.eval.corloc import corloc
from surgery_core.eval.results import (APEntry, APTables, CorLocEntry, CorLocTables, SizeAPTables, Sweep, SweepBest,
                                       SweepCell, nested_none_if_nan)
from surgery_core.progress import QUIET, Progress
from surgery_core.run.config import RunConfig
from surgery_core.run.grids import GridSet

#: Each protocol's line for tables, by name (the records' notes, :mod:`surgery_core.eval.protocols`).
PROTOCOL_NOTES = {name: p.note for name, p in PROTOCOLS.items()}
INTERP_NOTES = {
    "voc07": "VOC2007 11-point interpolation, greedy matching, IoU >= t, continuous coordinates",
    "voc": "VOC2010+ all-point interpolation, greedy matching, IoU >= t, continuous coordinates",
    "coco": "COCO 101-point interpolation (faster-coco-eval), COCOeval maxDets 100 per image and class, area all",
}


# TP/FP of single-sample views: heatmap boxes come from a coarse patch grid (7x7 for ViT-B/32), so at IoU 0.5
# nearly every box reads FP; 0.1 is the seed report's second threshold.
VIEW_IOU = 0.1


def view_iou(cfg: RunConfig) -> float:
    """The IoU threshold at which views of single samples mark boxes TP or FP (the dashboard's Compare page
    and the figures of ``surgery evaluate`` alike): :data:`VIEW_IOU` when the run scores it, else the run's
    first threshold."""
    return VIEW_IOU if VIEW_IOU in cfg.iou_thresholds else float(cfg.iou_thresholds[0])


def box_params_for(cfg: RunConfig, proto: ProtocolLike) -> BoxParams:
    """The run's box parameters as ``proto`` cuts with them (``Protocol.box_params``: class-probability weighting
    forced on under ``open``)."""
    return protocol(proto).box_params(cfg.boxes)


def present_pairs(dataset: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, class) pairs annotated in each image, for the ``present`` protocol; rows index the grid set."""
    pr, pc = [], []
    for r, i in enumerate(rows.tolist()):
        for c in np.unique(dataset.images[i].labels).tolist():
            pr.append(r)
            pc.append(c)
    return np.asarray(pr, np.int64), np.asarray(pc, np.int64)


def maps_per_protocol(dataset: Dataset, rows: np.ndarray, n_classes: int) -> dict[str, int]:
    """How many (image, class) maps each protocol cuts per method, by name: its progress count."""
    n_present = len(present_pairs(dataset, rows)[0])
    return {name: p.n_pairs(n_present, len(rows), n_classes) for name, p in PROTOCOLS.items()}


def ground_truth_for(dataset: Dataset, rows: np.ndarray) -> Detections:
    """Ground truth of the images that have grids (images skipped for bad data are left out of scoring)."""
    gt = dataset.ground_truth()
    return gt[np.isin(gt.image, rows)]


def all_percentiles(cfg: RunConfig) -> tuple:
    """Every cut the run's views offer: the sweep's and quality's percentiles and the run's own cut (a percentile
    or a :class:`~surgery_core.eval.boxes.BoxRule`), percentiles first."""
    return tuple(sorted({*map(float, cfg.sweep_percentiles), *map(float, cfg.quality_percentiles), cfg.boxes.cut},
                        key=cut_sort_key))


def fixed_cuts(cfg: RunConfig) -> tuple[BoxRule, ...]:
    """The fixed-value cuts the views offer: the sweep's values and the run's own."""
    return tuple(BoxRule("fixed", v) for v in sorted({*map(float, cfg.sweep_fixed_values), cfg.boxes.fixed_value}))


#: A run's boxes by cell: what :func:`cut_boxes` returns and what the tables read (a dict, or the run's box store,
#: :class:`surgery_core.run.boxcells.RunBoxes`, which answers ``boxes[cell]`` the same way).
Boxes = Mapping[Cell, Detections]


def cut_boxes(cfg: RunConfig, dataset: Dataset, gs: GridSet, workers: int | None = None,
              bars: Progress = QUIET, *, methods: tuple[str, ...] | None = None,
              protocols: tuple[str, ...] | None = None, percentiles: tuple[float, ...] | None = None
              ) -> dict[Cell, Detections]:
    """Boxes of every method and protocol at every percentile the run needs (one working map per pair), at most
    ``cfg.boxes.max_dets`` per image of each cell (:mod:`surgery_core.eval.maxdets`), by :class:`Cell`.

    methods / protocols / percentiles: only these (default: the run's, and :func:`all_percentiles`).
    workers: processes; None = one per CPU for DIOR-scale runs (> 20,000 pairs), else this process only
    (starting workers costs about a second). Results are identical whatever the count. bars: a bar counting
    the (image, class) maps cut.
    """
    sizes = np.asarray([(dataset.images[i].width, dataset.images[i].height) for i in gs.rows], np.int64)
    sizes = sizes.reshape(-1, 2)
    pr, pc = present_pairs(dataset, gs.rows)
    out: dict[Cell, Detections] = {}
    methods = cfg.methods if methods is None else methods
    protos = tuple(protocol(p) for p in (cfg.protocols if protocols is None else protocols))
    percentiles = all_percentiles(cfg) if percentiles is None else tuple(as_cut(p) for p in percentiles)
    cap = cfg.boxes.max_dets
    n_maps = {p: p.n_pairs(len(pr), len(gs.rows), len(gs.classes)) for p in protos}  # as maps_per_protocol
    if workers is None:
        workers = 0 if sum(n_maps.values()) > 20_000 else 1
    total = len(methods) * sum(n_maps.values())
    with bars.bar(f"boxes ({len(methods)} methods x {'+'.join(p.name for p in protos)}, {len(percentiles)} "
                  "percentiles)", total, "map") as bar:
        for m in methods:
            if cfg.boxes.refine == "pamr":
                for proto in protos:
                    pairs = {} if proto.all_classes else dict(pair_image=pr, pair_class=pc)
                    dets = _refined_sweep(cfg, dataset, gs, m, sizes, proto, percentiles, pairs)
                    out.update({Cell(m, proto, p): cap_detections(d, cap) for p, d in dets.items()})
                    bar.update(n_maps[proto])
                continue
            # one cut of each map serves both protocols (cell_detections)
            out.update(cell_detections(gs.grids[m], sizes, cfg.boxes, m, protos, percentiles, (pr, pc),
                                       class_probs=gs.probs, image_ids=gs.rows, workers=workers,
                                       progress=bar.update, max_dets=cap))
    return out


def _refined_sweep(cfg, dataset, gs, method, sizes, proto, percentiles, pairs):
    """``refine: pamr``: the sweep on PAMR-refined maps (refine.py), the image squashed to the input size."""
    from surgery_core.data.images import read_image, squash
    from surgery_core.model.refine import sweep_refined

    def load(row):
        return squash(read_image(dataset.images[int(gs.rows[row])].path), gs.input_size)

    return sweep_refined(gs.grids[method], sizes, box_params_for(cfg, proto), percentiles, load, gs.input_size,
                         class_probs=gs.probs, image_ids=gs.rows, **pairs)


def ap_tables(cfg: RunConfig, dataset: Dataset, gs: GridSet, boxes: Boxes, percentile: float | None = None,
              bars: Progress = QUIET) -> APTables:
    """AP per method, protocol and interpolation at one percentile (default: the run's).

    VOC interpolations are scored at each IoU of ``cfg.iou_thresholds``; COCO at those thresholds too and,
    for its headline ``mAP``, at .50:.05:.95.
    """
    return _ap_tables(cfg, dataset, gs, boxes, percentile, bars, (None,))[None]


def _ap_tables(cfg, dataset, gs, boxes, percentile, bars, sizes) -> dict:
    """:func:`ap_tables` of each size bucket of ``sizes`` (None = all objects), one VOC matching per cell shared by
    every size and VOC interpolation."""
    p = as_cut(cfg.boxes.cut if percentile is None else percentile)
    gt = ground_truth_for(dataset, gs.rows)
    k = len(gs.classes)
    out: dict = {s: {} for s in sizes}
    label = "AP" if sizes == (None,) else "AP by object size"
    with bars.bar(f"{label} at {cut_label(p)}", len(cfg.methods) * len(cfg.protocols) * len(cfg.interps) * len(sizes),
                  "method x protocol x interp") as bar:
        for m in cfg.methods:
            for proto in cfg.protocols:
                det = boxes[Cell.of(m, proto, p)]
                match = voc_match(gt, det) if len(sizes) > 1 and set(cfg.interps) - {"coco"} else None
                for size in sizes:
                    for interp in cfg.interps:
                        res = evaluate(gt, det, k, cfg.iou_thresholds, interp, area=size,
                                       match=None if interp == "coco" else match)
                        head = evaluate(gt, det, k, COCO_IOUS, "coco", area=size) if interp == "coco" else None
                        note = INTERP_NOTES[interp] if size is None else (
                            INTERP_NOTES[interp].replace(", area all", "") + "; " + size_note(size))
                        out[size].setdefault(m, {}).setdefault(proto, {})[interp] = APEntry.from_ap(
                            res, gs.classes, note, head)
                        bar.update(1)
    # A percentile is written as before; another rule is named, and the percentile left empty.
    pct, rule = (p, None) if not isinstance(p, BoxRule) else (None, cut_label(p))
    return {s: APTables(pct, {pr: PROTOCOL_NOTES[pr] for pr in cfg.protocols}, t, rule) for s, t in out.items()}


def ap_by_size(cfg: RunConfig, dataset: Dataset, gs: GridSet, boxes: Boxes, percentile: float | None = None,
               bars: Progress = QUIET) -> SizeAPTables:
    """AP per method, protocol and interpolation of small, medium and large objects (COCO's buckets and ignore
    rule, :mod:`surgery_core.eval.ap`), with the ground truth's size mix per class."""
    gt = ground_truth_for(dataset, gs.rows)
    counts = size_counts(gt, len(gs.classes))
    mix = {c: {s: int(counts[i, j]) for i, s in enumerate(SIZES)} for j, c in enumerate(gs.classes)}
    return SizeAPTables({s: list(AREA_RANGES[s]) for s in SIZES}, mix,
                        _ap_tables(cfg, dataset, gs, boxes, percentile, bars, SIZES))


#: What CorLoc is, in one line for tables and files (docs/DESIGN.md section 5).
CORLOC_NOTE = ("CorLoc (Deselaers et al. 2012; OICR's dis_eval): per class, over the images that contain it, the share "
               "whose highest-scoring box of the class has IoU >= t with a GT box of the class; mean over classes")


def corloc_ious(cfg: RunConfig) -> tuple[float, ...]:
    """The IoU thresholds CorLoc is tabled at: the run's and 0.5 (the papers' threshold)."""
    return tuple(sorted({*map(float, cfg.iou_thresholds), 0.5}))


def corloc_tables(cfg: RunConfig, dataset: Dataset, gs: GridSet, boxes: Boxes, percentile: float | None = None
                  ) -> CorLocTables:
    """CorLoc per method and protocol at the run's box rule (or ``percentile``), at :func:`corloc_ious`."""
    p = as_cut(cfg.boxes.cut if percentile is None else percentile)
    gt = ground_truth_for(dataset, gs.rows)
    ts = corloc_ious(cfg)
    out = {m: {pr: CorLocEntry.from_result(corloc(gt, boxes[Cell.of(m, pr, p)], len(gs.classes), ts), gs.classes)
               for pr in cfg.protocols} for m in cfg.methods}
    params = cfg.boxes.with_cut(p)
    return CorLocTables(list(ts), box_note(params), CORLOC_NOTE, out)


def sweep_table(cfg: RunConfig, dataset: Dataset, gs: GridSet, boxes: Boxes,
                interps: tuple[str, ...] = ("voc07", "voc"), bars: Progress = QUIET, *,
                methods: tuple[str, ...] | None = None, protocols: tuple[str, ...] | None = None,
                rule: str = "percentile") -> Sweep:
    """mAP and per-class AP over the percentile x IoU grid, per method, protocol and interpolation.

    methods / protocols: only these (default: the run's). rule: "percentile" sweeps ``cfg.sweep_percentiles``;
    "fixed" sweeps the fixed-value rule over :func:`fixed_cuts` (the rows, and ``best.percentile``, are then
    values of the 0-1 map).
    """
    methods = cfg.methods if methods is None else methods
    protocols = cfg.protocols if protocols is None else protocols
    gt = ground_truth_for(dataset, gs.rows)
    k = len(gs.classes)
    ps = sweep_cuts(cfg, rule)
    out: dict = {}

    def scores(det: Detections) -> dict[str, tuple]:
        """One cell's ``(map_per_iou [T], ap [T, K])`` per interpolation (not the PR curves)."""
        match = voc_match(gt, det) if any(i != "coco" for i in interps) else None  # shared by the VOC interps
        got = {}
        for interp in interps:
            res = evaluate(gt, det, k, cfg.iou_thresholds, interp, match=None if interp == "coco" else match)
            got[interp] = (res.map_per_iou, res.ap)
        return got

    # The cells of a method and protocol are scored on every core: matching and AP are numpy over whole arrays,
    # which runs without the GIL; each cell's numbers are what it gives alone, in the same order.
    threads = min(4, os.cpu_count() or 1)
    with bars.bar(f"sweep {len(ps)} percentiles x {len(cfg.iou_thresholds)} IoUs",
                  len(methods) * len(protocols) * len(ps), "method x protocol x percentile") as bar, \
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sweep") as pool:
        for m in methods:
            for proto in protocols:
                results: dict[str, list] = {interp: [] for interp in interps}

                def collect(job) -> None:
                    for interp, r in job.result().items():
                        results[interp].append(r)
                    bar.update(1)

                jobs: deque = deque()  # in percentile order; a few cells ahead, not every cell's boxes at once
                for p in ps:
                    jobs.append(pool.submit(scores, boxes[Cell.of(m, proto, p)]))
                    if len(jobs) > threads:
                        collect(jobs.popleft())
                while jobs:
                    collect(jobs.popleft())
                for interp in interps:
                    maps_a = np.asarray([r[0] for r in results[interp]])  # [P, T]
                    pc = np.asarray([r[1] for r in results[interp]])  # [P, T, K]
                    best = np.unravel_index(np.nanargmax(np.nan_to_num(maps_a, nan=-1)), maps_a.shape)
                    out.setdefault(m, {}).setdefault(proto, {})[interp] = SweepCell(
                        nested_none_if_nan(maps_a),
                        {c: nested_none_if_nan(pc[:, :, j]) for j, c in enumerate(gs.classes)},
                        SweepBest(sweep_rows(cfg, rule)[best[0]], float(cfg.iou_thresholds[best[1]]),
                                  nested_none_if_nan(maps_a[best])))
    return sweep_of(cfg, out, interps, rule)


def sweep_of(cfg: RunConfig, table: dict, interps: tuple[str, ...] = ("voc07", "voc"), rule: str = "percentile"
             ) -> Sweep:
    """A :class:`Sweep` of ``table`` (``[method][protocol][interp]`` cells) with the run's percentiles (or fixed
    values), IoUs and box rule: one place for the header, whether the table was computed in one call or assembled
    from parts."""
    return Sweep(sweep_rows(cfg, rule), list(cfg.iou_thresholds), list(interps), sweep_note(cfg, rule), table)


#: The box rules the threshold sweep sweeps: those with a parameter.
SWEEP_RULES = ("percentile", "fixed")


def sweep_rule(cut) -> str:
    """The sweep a cut lies on (one of :data:`SWEEP_RULES`): ``percentile`` for a percentile, ``fixed`` for a fixed
    value; Otsu's rule has no parameter to sweep (an error)."""
    cut = as_cut(cut)
    if not isinstance(cut, BoxRule):
        return "percentile"
    if cut.kind == "fixed":
        return "fixed"
    raise ValueError(f"the sweep sweeps {' or '.join(SWEEP_RULES)} (Otsu has no parameter), not {cut_label(cut)}")


def sweep_cuts(cfg: RunConfig, rule: str = "percentile") -> tuple:
    """The cuts of the sweep's rows: the sweep percentiles, or the fixed-value cuts (:func:`fixed_cuts`)."""
    if rule not in SWEEP_RULES:
        raise ValueError(f"the sweep sweeps {' or '.join(SWEEP_RULES)} (Otsu has no parameter), not {rule!r}")
    return tuple(float(p) for p in cfg.sweep_percentiles) if rule == "percentile" else fixed_cuts(cfg)


def sweep_rows(cfg: RunConfig, rule: str = "percentile") -> list[float]:
    """The sweep's row values: percentiles, or fixed values of the 0-1 map."""
    return [c if not isinstance(c, BoxRule) else c.value for c in sweep_cuts(cfg, rule)]


def sweep_note(cfg: RunConfig, rule: str = "percentile") -> str:
    """The sweep's header: the run's box parameters under the swept rule at the run's own value of its parameter
    (the run's percentile, or its fixed value); the rows replace that value."""
    own = float(cfg.boxes.percentile) if rule == "percentile" else BoxRule("fixed", cfg.boxes.fixed_value)
    return box_note(cfg.boxes.with_cut(own))


def describe_boxes(params: BoxParams) -> str:
    """One line saying exactly how boxes were cut (shown next to every number)."""
    parts = [rule_words(params),
             f"working map {params.box_resolution or 'image-size'} px (bilinear)",
             f"close+open {params.morph_kernel}x{params.morph_kernel}", f"{params.connectivity}-connected components",
             f"score = {params.score} of map in component" + (" x class prob" if params.class_prob_weight else "")]
    if params.min_area:
        parts.append(f"min area {params.min_area:g} px2")
    if params.nms_iou is not None:
        parts.append(f"NMS {params.nms_iou:g}")
    parts.append(describe_cap(params.max_dets))
    if params.refine != "none":
        parts.append(f"maps refined by {params.refine.upper()} (10 iterations, dilations 8, 16 px) before the threshold")
    return ", ".join(parts)


def rule_words(params: BoxParams) -> str:
    """The threshold of the box rule in words, as every caption states it."""
    if params.rule == "otsu":
        return "Otsu's threshold of each min-max-normalised working map (256 bins over 0-1)"
    if params.rule == "fixed":
        return f"fixed value {params.fixed_value:g} of the min-max-normalised map"
    return f"percentile {params.percentile:g} of the min-max-normalised map"


def box_note(params: BoxParams) -> str:
    """``boxes: <rule>``, how every table and caption names the box rule its numbers come from."""
    return f"boxes: {describe_boxes(params)}"


def describe_cap(max_dets: int) -> str:
    """The detection cap in words, as every AP caption states it."""
    if not max_dets:
        return "no cap on boxes per image (maxDets off)"
    return f"maxDets {max_dets}: at most {max_dets} boxes per image over all classes, highest scores kept"
