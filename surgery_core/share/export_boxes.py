"""A run's predicted boxes as files other evaluators read (``surgery export boxes``, ``evaluate --export-boxes``,
the Per-class AP page's download).

For each (method, protocol, box rule) cell of a run, over all its images (those with grids)::

    ground_truth.json                       COCO ground truth of the run's images (one file for every cell)
    <method>.<protocol>.<rule>.json         COCO results: image_id, category_id, bbox [x, y, w, h], score
    <method>.<protocol>.<rule>.csv          the CSV ``surgery score`` reads: image_id,class,xmin,ymin,xmax,ymax,score
    manifest.json                           run hash, model, dataset, ids, per file the box rule, the box count and
                                            the run's own mAP (per interpolation and IoU) that scoring it reproduces

``<rule>`` names the box rule (:func:`~surgery_core.eval.boxes.cut_tag`: ``p90`` for the 90th percentile of
the map, ``otsu``, ``fixed0.5``). The boxes are the run's own cells (:meth:`Run.detections`: the cap
``max_dets`` applied), in the run's order, every float written exactly
(:mod:`surgery_core.data.exchange`), so ``surgery score --coco ground_truth.json --detections FILE`` gives the
run's AP at every interpolation and IoU (to 1e-12; tested). The ground truth is the run's: images left out
of the run (undecodable) are left out of it too, which is why scoring against the exported ground truth, not
the dataset folder, reproduces a run that skipped images or used ``limit``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from surgery_core.data.exchange import CocoIds, coco_ground_truth, coco_results, detections_csv
from surgery_core.eval.ap import COCO_IOUS
from surgery_core.eval.boxes import BoxRule, Cut, as_cut, cut_label, cut_tag
from surgery_core.eval.protocols import Cell
from surgery_core.eval.results import iou_key, none_if_nan
from surgery_core.files import atomic_write_text
from surgery_core.run.evaluation import box_note, box_params_for
from surgery_core.run.facade import Run

GROUND_TRUTH = "ground_truth.json"
MANIFEST = "manifest.json"


def cell_stem(cell: Cell) -> str:
    """An exported cell's file stem: ``<method>.<protocol>.<rule>`` (rule as in folder names: ``p90``, ``otsu``,
    ``fixed0.5``)."""
    return f"{cell.method}.{cell.protocol.name}.{cut_tag(cell.cut)}"


def cell_note(run: Run, cell: Cell) -> str:
    """``boxes: <rule>``, as every table of the run names it."""
    return box_note(box_params_for(run.cfg, cell.protocol).with_cut(cell.cut))


def cells(run: Run, methods: Iterable[str] | None = None, protocols: Iterable[str] | None = None,
          cut: Cut | None = None) -> list[Cell]:
    """The cells to export (default: every method and protocol of the run at its own box rule; ``cut``: another
    percentile or rule), checked against the run: a method or protocol it did not compute is a one-line error
    naming what it has."""
    from surgery_core.errors import SurgeryError

    methods = tuple(run.cfg.methods if methods is None else methods)
    protocols = tuple(run.cfg.protocols if protocols is None else protocols)
    for what, asked, has in (("method", methods, run.cfg.methods), ("protocol", protocols, run.cfg.protocols)):
        missing = [x for x in asked if x not in has]
        if missing or not asked:
            raise SurgeryError(f"run {run.run_hash} has no {what} {', '.join(missing) or '(none given)'}; "
                               f"it has {', '.join(has)}")
    c = run.cfg.boxes.cut if cut is None else as_cut(cut)
    if not isinstance(c, BoxRule) and not 0.0 <= c <= 100.0:
        raise SurgeryError(f"--percentile {c:g}: must be between 0 and 100")
    return [Cell.of(m, pr, c) for m in methods for pr in protocols]


def _ids(run: Run) -> CocoIds:
    return CocoIds.of(run.dataset, run.classes)


def run_info(run: Run) -> dict:
    """What identifies the run, for the ``info`` of COCO files and the manifests."""
    return {"description": f"surgery run {run.run_hash}: {run.dataset.name} {run.dataset.split}",
            "run_hash": run.run_hash, "heatmap_key": run.grids.key, "model": run.model_info,
            "dataset": run.dataset.name, "split": run.dataset.split, "images": int(len(run.grids.rows)),
            "model_note": run.model_note}


def ground_truth_doc(run: Run) -> dict:
    """COCO ground truth of the run's images (those with grids), in the run's image and object order."""
    return coco_ground_truth(run.dataset, run.grids.rows, run.classes, _ids(run), info=run_info(run))


def run_map(run: Run, cell: Cell) -> dict:
    """The run's own mAP of a cell per interpolation and IoU (COCO also over .50:.95): what scoring the
    exported file reproduces. At the run's own box rule these are its stored AP tables (read, not recomputed:
    COCO's evaluation of a DIOR-sized cell takes seconds); at another rule they are computed."""
    if cell.cut == run.cfg.boxes.cut:
        tables = run.ap_tables()
        out = {}
        for interp in run.cfg.interps:
            entry = tables.entry(cell.method, cell.protocol.name, interp)
            out[interp] = dict(entry.map_per_iou) | ({"50:95": entry.map_50_95} if interp == "coco" else {})
        return out
    out = {}
    ts = tuple(float(t) for t in run.cfg.iou_thresholds)
    for interp in run.cfg.interps:
        res = run.ap(cell.method, cell.protocol, interp, cell.cut, ts)
        out[interp] = {iou_key(t): none_if_nan(v) for t, v in zip(ts, res.map_per_iou)}
        if interp == "coco":
            out[interp]["50:95"] = none_if_nan(run.ap(cell.method, cell.protocol, "coco", cell.cut, COCO_IOUS).mAP)
    return out


def cell_files(run: Run, cell: Cell) -> dict[str, str]:
    """``{file name: text}`` of one cell: the COCO results JSON and the CSV."""
    det = run.detections(cell.method, cell.protocol, cell.cut)
    return {f"{cell_stem(cell)}.json": json.dumps(coco_results(det, _ids(run)), separators=(",", ":")) + "\n",
            f"{cell_stem(cell)}.csv": detections_csv(det, run.dataset, run.classes)}


def manifest(run: Run, exported: list[Cell], scores: bool = True) -> dict:
    """What the export holds and how to check it (``scores``: the run's mAP of every file, computed now when
    the run has not yet)."""
    ids = _ids(run)
    files = []
    for c in exported:
        det = run.detections(c.method, c.protocol, c.cut)
        entry = {"results": f"{cell_stem(c)}.json", "csv": f"{cell_stem(c)}.csv", "method": c.method,
                 "protocol": c.protocol.name,
                 "box_rule": cut_tag(c.cut), "box_rule_text": cut_label(c.cut),
                 "percentile": None if isinstance(c.cut, BoxRule) else c.cut, "boxes_note": cell_note(run, c),
                 "boxes": int(len(det))}
        if scores:
            entry["run_mAP"] = run_map(run, c)
        files.append(entry)
    return {
        "run": run_info(run),
        "ground_truth": GROUND_TRUTH,
        "ids": {"image_id": {"stem": "the image file's stem as a number",
                             "position": "the image's position in the dataset, 1-based"}[ids.image_rule],
                "category_id": {c: ids.categories[k] for k, c in enumerate(run.classes)},
                "category_rule": {"dior": "DIOR's class number (1 = airplane ... 20 = windmill)",
                                  "position": "the class's position in the run's class list, 1-based"}[
                                      ids.category_rule]},
        "iou_thresholds": list(run.cfg.iou_thresholds), "interps": list(run.cfg.interps),
        "score_with": f"surgery score --coco {GROUND_TRUTH} --detections <results or csv> --interp <interp> "
                      "--iou <thresholds>",
        "files": files,
    }


def write_box_export(run: Run, out: str | Path, exported: list[Cell], scores: bool = True) -> list[Path]:
    """Write the ground truth, each cell's results JSON and CSV, and the manifest into folder ``out``; returns
    the paths written."""
    out = Path(out)
    written = []
    atomic_write_text(out / GROUND_TRUTH, json.dumps(ground_truth_doc(run), separators=(",", ":")) + "\n")
    written.append(out / GROUND_TRUTH)
    ensure_cells(run, exported)
    for c in exported:
        for name, text in cell_files(run, c).items():
            atomic_write_text(out / name, text)
            written.append(out / name)
    atomic_write_text(out / MANIFEST, json.dumps(manifest(run, exported, scores), indent=2, allow_nan=False) + "\n")
    written.append(out / MANIFEST)
    return written


def ensure_cells(run: Run, exported: list[Cell]) -> None:
    """Cut the missing cells together (one pass over each method's maps, both protocols sharing it)."""
    run.boxes.ensure_cells(exported)


def box_export_zip(run: Run, exported: list[Cell]) -> bytes:
    """The same files as one zip (the dashboard's download)."""
    from surgery_core.share.portable import zip_bytes

    ensure_cells(run, exported)
    members = [(GROUND_TRUTH, json.dumps(ground_truth_doc(run), separators=(",", ":")).encode())]
    for c in exported:
        members += [(name, text.encode()) for name, text in cell_files(run, c).items()]
    members.append((MANIFEST, json.dumps(manifest(run, exported), indent=2, allow_nan=False).encode()))
    return zip_bytes(members)


__all__ = ["cell_stem", "cell_note", "cells", "ground_truth_doc", "cell_files", "manifest", "write_box_export", "box_export_zip",
           "run_info", "run_map", "ensure_cells", "GROUND_TRUTH", "MANIFEST"]
