"""CorLoc and AP by object size of a run: the typed tables (corloc.json, ap_by_size.json) hold what the metric
functions give on the run's own boxes, read back key for key, and the reports carry them."""

from __future__ import annotations

import json

import numpy as np

from surgery_core.eval.ap import SIZES, evaluate, size_counts
from surgery_core.eval.corloc import corloc
from surgery_core.eval.results import CorLocTables, SizeAPTables, iou_key
from surgery_core.run.evaluation import corloc_ious


def test_run_corloc_is_the_metric_on_the_run_boxes(test_run):
    run = test_run
    tables = run.corloc()
    assert tables.ious == list(corloc_ious(run.cfg)) and 0.5 in tables.ious
    assert "percentile 90" in tables.box_note
    k = len(run.classes)
    for m in run.cfg.methods:
        for pr in run.cfg.protocols:
            ref = corloc(run.gt, run.detections(m, pr, run.cfg.boxes.percentile), k, tables.ious)
            e = tables.entry(m, pr)
            for t, key in enumerate(iou_key(x) for x in tables.ious):
                assert e.corloc[key] == float(ref.mean[t])
                for j, c in enumerate(run.classes):
                    v = e.per_class[c][key]
                    assert (v is None and ref.n_images[j] == 0) or v == float(ref.corloc[t, j])
            # any IoU, live: the same figure
            assert run.corloc_at(m, pr, run.cfg.boxes.percentile, 0.5).mean[0] == e.corloc["0.5"]
    # the open protocol scales every box of an (image, class) by one probability: the same top box, the same CorLoc
    if {"present", "open"} <= set(run.cfg.protocols):
        m = run.cfg.methods[0]
        assert tables.entry(m, "present").corloc == tables.entry(m, "open").corloc
    doc = json.loads((run.run_dir / "corloc.json").read_text())
    assert CorLocTables.from_dict(doc).to_dict() == doc
    assert len(tables.to_frame()) == len(run.cfg.methods) * len(run.cfg.protocols) * len(tables.ious)


def test_run_ap_by_size_is_the_metric_on_the_run_boxes(test_run):
    run = test_run
    by = run.ap_by_size()
    assert list(by.tables) == list(SIZES)
    counts = size_counts(run.gt, len(run.classes))
    assert {c: [by.size_mix[c][s] for s in SIZES] for c in run.classes} == \
        {c: counts[:, j].tolist() for j, c in enumerate(run.classes)}
    assert counts.sum() >= len(run.gt)  # every box is in some bucket (boundary boxes in two)
    m, pr = run.cfg.methods[-1], run.cfg.protocols[0]
    det = run.detections(m, pr, run.cfg.boxes.percentile)
    for size in SIZES:
        for interp in run.cfg.interps:
            e = by.tables[size].entry(m, pr, interp)
            ref = evaluate(run.gt, det, len(run.classes), run.cfg.iou_thresholds, interp, area=size)
            assert [e.map_per_iou[iou_key(t)] for t in run.cfg.iou_thresholds] == \
                [None if np.isnan(v) else float(v) for v in ref.map_per_iou]
            assert size in e.note
            assert run.ap(m, pr, interp, run.cfg.boxes.percentile, run.cfg.iou_thresholds, size).mAP == ref.mAP \
                or np.isnan(ref.mAP)
    doc = json.loads((run.run_dir / "ap_by_size.json").read_text())
    assert SizeAPTables.from_dict(doc).to_dict() == doc
