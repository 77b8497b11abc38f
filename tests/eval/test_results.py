"""Typed results: to_dict() is the file schema (round trip exact, key order included), to_frame() the one flat table,
per_class() the one per-class walk; the pointing tolerance is a configuration field neutral at its default."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery_core.data.detections import Detections
from surgery_core.eval.ap import COCO_IOUS, evaluate
from surgery_core.eval.results import (
    COCO_50_95,
    MEAN_OVER_IOUS,
    APEntry,
    APTables,
    Sweep,
    SweepBest,
    SweepCell,
    nested_none_if_nan,
    none_if_nan,
)

CLASSES = ("a", "b", "c")  # "c" has no ground truth
IOUS = (0.1, 0.5)


def _tables() -> APTables:
    gt = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 30, 30]], float), np.ones(3),
                    np.array([0, 0, 1]), np.array([0, 0, 1]))
    det = Detections(np.array([[0, 0, 10, 9], [21, 22, 40, 40], [50, 50, 60, 60], [0, 0, 20, 20]], float),
                     np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 0, 1]), np.array([0, 0, 0, 1]))
    entries = {}
    for m, shift in (("m1", 0.0), ("m2", 3.0)):
        d = Detections(det.xyxy + shift, det.score, det.class_id, det.image)
        for it in ("voc07", "coco"):
            head = evaluate(gt, d, 3, COCO_IOUS, "coco") if it == "coco" else None
            entries.setdefault(m, {}).setdefault("present", {})[it] = APEntry.from_ap(
                evaluate(gt, d, 3, IOUS, it), CLASSES, f"note {it}", head)
    return APTables(90.0, {"present": "present: ..."}, entries)


def test_ap_tables_round_trip_the_file_schema_exactly():
    t = _tables()
    doc = json.loads(json.dumps(t.to_dict()))
    assert list(doc) == ["percentile", "protocol_notes", "tables"]
    e = doc["tables"]["m1"]["present"]["coco"]
    assert list(e) == ["per_iou", "note", "mAP_50_95", "per_class_50_95"]
    assert list(doc["tables"]["m1"]["present"]["voc07"]) == ["per_iou", "note"]
    assert list(e["per_iou"]) == ["interp", "iou", "mAP", "mAP_per_iou", "n_classes_with_gt", "per_class"]
    assert e["per_iou"]["per_class"]["c"] == {"AP": None, "AP_per_iou": {"0.1": None, "0.5": None}, "n_gt": 0,
                                              "n_det": 0}
    back = APTables.from_dict(doc)
    assert json.dumps(back.to_dict()) == json.dumps(doc)  # same keys, same order, same values
    assert back.entry("m1", "present", "voc07").map_per_iou == doc["tables"]["m1"]["present"]["voc07"]["per_iou"][
        "mAP_per_iou"]


def test_ap_frame_is_the_flat_map_table():
    t = _tables()
    f = t.to_frame()
    assert list(f.columns) == ["method", "protocol", "interp", "iou", "percentile", "mAP"]
    # per (method, protocol, interp): one row per IoU, the mean, and COCO's .50:.95 for coco
    assert len(f) == 2 * (len(IOUS) + 1) + 2 * (len(IOUS) + 2)
    row = f[(f.method == "m2") & (f.interp == "coco") & (f.iou == COCO_50_95)].iloc[0]
    assert row["mAP"] == t.entry("m2", "present", "coco").map_50_95
    mean = f[(f.method == "m1") & (f.interp == "voc07") & (f.iou == MEAN_OVER_IOUS)].iloc[0]
    assert mean["mAP"] == pytest.approx(t.entry("m1", "present", "voc07").map)


def test_per_class_walk_reads_every_column():
    t = _tables()
    assert t.columns("voc07") == ["0.1", "0.5", MEAN_OVER_IOUS]
    assert t.columns("coco") == ["0.1", "0.5", MEAN_OVER_IOUS, COCO_50_95]
    rows = t.per_class("present", "coco", COCO_50_95, ["m1", "m2"], list(CLASSES))
    assert [(c, n) for c, n, _ in rows] == [("a", 2), ("b", 1), ("c", 0)]
    assert rows[2][2] == [None, None]  # no ground truth: not scored
    e = t.entry("m1", "present", "voc07")
    assert t.per_class("present", "voc07", "0.5", ["m1"], ["a"])[0][2] == [e.per_class["a"].ap_per_iou["0.5"]]
    assert t.per_class("present", "voc07", MEAN_OVER_IOUS, ["m1"], ["a"])[0][2] == [e.per_class["a"].ap]


def test_sweep_round_trip_and_frame():
    m = np.array([[0.5, np.nan], [0.25, 0.125]])
    cell = SweepCell(nested_none_if_nan(m), {"a": nested_none_if_nan(m)}, SweepBest(80.0, 0.1, 0.5))
    s = Sweep([80.0, 90.0], [0.1, 0.5], ["voc07"], "boxes: ...", {"m1": {"present": {"voc07": cell}}})
    doc = json.loads(json.dumps(s.to_dict()))
    assert doc["table"]["m1"]["present"]["voc07"]["mAP"] == [[0.5, None], [0.25, 0.125]]
    assert json.dumps(Sweep.from_dict(doc).to_dict()) == json.dumps(doc)
    f = s.to_frame()
    assert f["mAP"].tolist() == [0.5, None, 0.25, 0.125]  # None stays None (the CSV writes it empty)
    assert f[["percentile", "iou"]].values.tolist() == [[80, 0.1], [80, 0.5], [90, 0.1], [90, 0.5]]


def test_nan_becomes_none():
    assert none_if_nan(float("nan")) is None and none_if_nan(np.float32(0.5)) == 0.5
    assert nested_none_if_nan(np.array([[1.0, np.nan]])) == [[1.0, None]]


def test_pointing_tolerance_is_neutral_at_its_default():
    from surgery_core.run.config import RunConfig

    base = RunConfig()
    assert base.pointing_tolerance_px_at_224 == 15.0
    assert "pointing_tolerance_px_at_224" not in base.to_file_dict()  # files dump the configuration as before
    assert "pointing_tolerance_px_at_224" not in json.loads(base.canonical_json())
    full = json.loads(base.model_dump_json())
    assert full.pop("pointing_tolerance_px_at_224") == 15.0
    # the other fields added since the files' schema was fixed, at their defaults: the catalog name and hash of the
    # model, and the positional-embedding rule
    assert [full["model"].pop(k) for k in ("name", "sha256", "allow_sha256_mismatch")] == [None, None, False]
    assert full["input"].pop("posembed") == "official"
    assert base.to_file_dict() == full  # nothing else dropped
    assert base.to_file_dict()["boxes"]["refine"] == "none"  # written since before the files' schema was fixed
    other = RunConfig(pointing_tolerance_px_at_224=10)
    assert other.run_hash != base.run_hash and other.to_file_dict()["pointing_tolerance_px_at_224"] == 10.0
    assert RunConfig(**other.to_file_dict()) == other
