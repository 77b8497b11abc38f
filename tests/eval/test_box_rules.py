"""Box rules beside the seed's percentile: Otsu's threshold and a fixed value of the 0-1 map, cut by the same
one-pass cutter, keyed in the run's cells and configuration without moving anything of the percentile rule."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from surgery_core.eval.protocols import Cell
from surgery_core.eval.boxes import (BoxParams, BoxRule, as_cut, boxes_from_grid, cut_label, cut_tag,
                                     cut_thresholds, otsu_threshold, percentile_thresholds)
from surgery_core.eval.cutting import detections_at
from surgery_core.eval.maps import working_map
from surgery_core.run.config import RunConfig
from surgery_core.run.evaluation import all_percentiles, describe_boxes
from tests.eval.test_boxes import plain_loop_boxes

RNG = np.random.default_rng(20261207)


def random_map(seed: int, shape=(224, 224)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = rng.normal(0.2, 0.03, (7, 7)).astype(np.float32)
    grid[rng.integers(0, 7), rng.integers(0, 7)] += 0.2
    return working_map(grid, 800, 800, shape[0])


# ------------------------------------------------------------------------------------------------ Otsu
def otsu_loop(wmap: np.ndarray) -> float:
    """Otsu's split written as a plain loop over the 255 splits of a 256-bin histogram over [0, 1] (np.histogram),
    bin centres as values; returns the upper edge of the last background bin."""
    hist, edges = np.histogram(wmap.astype(np.float64), bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    best, best_k = -1.0, 0
    for k in range(255):
        w0, w1 = hist[:k + 1].sum(), hist[k + 1:].sum()
        if w0 == 0 or w1 == 0:
            var = 0.0
        else:
            mu0 = (hist[:k + 1] * centres[:k + 1]).sum() / w0
            mu1 = (hist[k + 1:] * centres[k + 1:]).sum() / w1
            var = w0 * w1 * (mu0 - mu1) ** 2
        if var > best:
            best, best_k = var, k
    return edges[best_k + 1]


@pytest.mark.parametrize("seed", range(6))
def test_otsu_equals_a_plain_loop_and_opencv_on_the_binned_map(seed):
    wmap = random_map(seed)
    t = otsu_threshold(wmap)
    assert t.dtype == np.float32
    assert float(t) == otsu_loop(wmap)
    # OpenCV's THRESH_OTSU on the map's bin indices picks the same split (foreground: bins above it)
    binned = np.clip(np.floor(wmap.astype(np.float64) * 256), 0, 255).astype(np.uint8)
    k, _ = cv2.threshold(binned, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    assert float(t) == (k + 1) / 256
    # exactly the pixels of the bins above the split are foreground
    np.testing.assert_array_equal(wmap >= t, binned > k)


def test_otsu_of_a_constant_map_cuts_nothing():
    assert float(otsu_threshold(np.zeros((224, 224), np.float32))) == 1 / 256
    assert boxes_from_grid(np.full((7, 7), 0.3, np.float32), 800, 800, BoxParams(rule="otsu"))[1].size == 0


# ------------------------------------------------------------------------------------------------ cutting
@pytest.mark.parametrize("rule", [BoxRule("otsu"), BoxRule("fixed", 0.6), BoxRule("fixed", 0.0)])
def test_a_rule_cuts_what_its_threshold_alone_cuts(rule):
    params = BoxParams().with_cut(rule)
    assert params.cut == rule
    for seed in range(4):
        grid = np.random.default_rng(seed).normal(0.2, 0.03, (7, 7)).astype(np.float32)
        wmap = working_map(grid, 800, 800, 224)
        t = otsu_threshold(wmap) if rule.kind == "otsu" else np.float32(rule.value)
        want = plain_loop_boxes(wmap, t, params.morph_kernel, params.connectivity, params.score)
        xyxy, score = boxes_from_grid(grid, 800, 800, params)
        assert len(score) == len(want)
        np.testing.assert_array_equal(xyxy, np.array([w[0] for w in want]).reshape(-1, 4) * (800 / 224))
        np.testing.assert_array_equal(score, [w[1] for w in want])


def test_percentiles_mixed_with_rules_stay_bit_identical():
    wmap = random_map(7)
    ps = [50.0, 75.0, 90.0]
    mixed = cut_thresholds(wmap, [90.0, BoxRule("otsu"), 50.0, BoxRule("fixed", 0.25), 75.0])
    np.testing.assert_array_equal(mixed[[2, 4, 0]], percentile_thresholds(wmap, ps))
    assert mixed[1] == otsu_threshold(wmap) and mixed[3] == np.float32(0.25)
    np.testing.assert_array_equal(cut_thresholds(wmap, ps), percentile_thresholds(wmap, ps))


def test_a_sweep_over_mixed_cuts_equals_one_call_per_cut():
    grids = RNG.normal(0.2, 0.03, (5, 3, 7, 7)).astype(np.float32)
    sizes = np.array([[800, 800]] * 4 + [[640, 480]])
    params = BoxParams()
    cuts = [90.0, BoxRule("otsu"), BoxRule("fixed", 0.5)]
    out = detections_at(grids, sizes, params, cuts, max_dets=4)
    assert list(out) == cuts
    for c in cuts:
        alone = detections_at(grids, sizes, params.with_cut(c), [c], max_dets=4)[c]
        np.testing.assert_array_equal(out[c].xyxy, alone.xyxy)
        np.testing.assert_array_equal(out[c].score, alone.score)


# ------------------------------------------------------------------------------------------------ naming
def test_cut_names_and_validation():
    assert [cut_tag(c) for c in (90, BoxRule("otsu"), BoxRule("fixed", 0.5))] == ["p90", "otsu", "fixed0.5"]
    assert cut_label(BoxRule("fixed", 0.25)) == "fixed value 0.25" and cut_label(75.0) == "percentile 75"
    assert f"{BoxRule('otsu'):g}" == "otsu" and as_cut(np.float64(90)) == 90.0
    with pytest.raises(ValueError):
        BoxRule("fixed", 1.5)
    with pytest.raises(ValueError):
        BoxRule("median")
    with pytest.raises(ValidationError):
        BoxParams(rule="fixed", fixed_value=2.0)
    assert "Otsu's threshold" in describe_boxes(BoxParams(rule="otsu"))
    assert "fixed value 0.3 of the min-max-normalised map" in describe_boxes(BoxParams(rule="fixed", fixed_value=0.3))
    assert "percentile 90 of the min-max-normalised map" in describe_boxes(BoxParams())


def test_the_rule_is_in_the_run_hash_without_moving_existing_hashes():
    # the hash of a configuration stored before the rules existed (computed on main before this change; a
    # configuration naming its methods, as the default method list has grown since)
    assert RunConfig(data={"kind": "samples"}, methods=("vv_mixed",)).run_hash == "eebbf941e212"
    for cfg in (RunConfig(), RunConfig(boxes={"percentile": 75})):
        doc = __import__("json").loads(cfg.canonical_json())
        assert not {"rule", "fixed_value"} & set(doc["boxes"]) and "sweep_fixed_values" not in doc
    assert RunConfig().to_file_dict()["boxes"]["rule"] == "percentile"  # files name the rule
    otsu, fixed = RunConfig(boxes={"rule": "otsu"}), RunConfig(boxes={"rule": "fixed", "fixed_value": 0.4})
    hashes = {RunConfig().run_hash, otsu.run_hash, fixed.run_hash,
              RunConfig(boxes={"rule": "fixed", "fixed_value": 0.6}).run_hash}
    assert len(hashes) == 4
    assert otsu.to_file_dict()["boxes"]["rule"] == "otsu"
    assert otsu.boxes.cut == BoxRule("otsu") and fixed.boxes.cut == BoxRule("fixed", 0.4)
    assert all_percentiles(otsu)[-1] == BoxRule("otsu") and 90.0 in all_percentiles(otsu)
    with pytest.raises(ValidationError):
        RunConfig(sweep_fixed_values=(0.5, 1.5))


# ------------------------------------------------------------------------------------------------ a run
def test_a_run_cuts_stores_scores_and_sweeps_the_other_rules(test_run, tmp_path):
    from surgery_core.eval.ap import evaluate
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    run = test_run
    m, pr = run.cfg.methods[-1], run.cfg.protocols[0]
    otsu, fixed = BoxRule("otsu"), BoxRule("fixed", 0.5)
    p90 = run.detections(m, pr, 90.0)
    for rule in (otsu, fixed):
        det = run.detections(m, pr, rule)
        assert run.boxes.cells.path(Cell.of(m, pr, rule)).name == cut_tag(rule)
        assert run.boxes.cells.has(Cell.of(m, pr, rule))
        # what the run stored is what one cut of the run's grids by that rule gives (the cap included)
        pairs = run.boxes.cells.read(Cell.of(m, pr, rule))
        np.testing.assert_array_equal(pairs.xyxy, det.xyxy)
        assert len(det) and not (len(det) == len(p90) and np.array_equal(det.xyxy, p90.xyxy))
        res = run.ap(m, pr, "voc07", rule, run.cfg.iou_thresholds)
        assert res.mAP == evaluate(run.gt, det, len(run.classes), run.cfg.iou_thresholds, "voc07").mAP
    # the fixed-value sweep: rows are the fixed values, each cell the AP of that cut
    part = run.sweep_part(m, pr, "fixed")
    assert run.has_sweep_part(m, pr, "fixed") and run.has_sweep_part(m, pr) is run.has_sweep_part(m, pr, "percentile")
    vals = list(run.cfg.sweep_fixed_values)
    row = vals.index(0.5)
    ap = run.ap(m, pr, "voc07", fixed, run.cfg.iou_thresholds)
    assert part["voc07"].map[row] == [None if np.isnan(v) else float(v) for v in ap.map_per_iou]
    assert part["voc07"].best.percentile in vals
    # a run whose own rule is Otsu: its tables say so, and share the cells (the box key leaves the rule out)
    cfg = run.cfg.model_copy(update={"boxes": run.cfg.boxes.with_cut(otsu)})
    other = Run(cfg, RunStore(tmp_path), run.dataset, run.grids, run.model_identity, run.model_note)
    assert cfg.run_hash != run.cfg.run_hash
    tables = other.ap_tables()
    assert tables.percentile is None and tables.box_rule == "Otsu" and tables.cut_text == "Otsu"
    assert tables.entry(m, pr, "voc07").map == evaluate(run.gt, run.detections(m, pr, otsu), len(run.classes),
                                                        run.cfg.iou_thresholds, "voc07").mAP
    assert "Otsu's threshold" in other.corloc().box_note


def test_the_box_export_takes_another_rule(test_run, tmp_path):
    """`surgery export boxes` / the Per-class AP download of an Otsu cell: files named by the rule, the manifest
    naming it (no percentile), and the run's own AP of those boxes."""
    from surgery_core.share.export_boxes import cell_stem, cells, write_box_export

    run, otsu = test_run, BoxRule("otsu")
    m, pr = run.cfg.methods[-1], run.cfg.protocols[0]
    exported = cells(run, [m], [pr], otsu)
    assert [cell_stem(c) for c in exported] == [f"{m}.{pr}.otsu"]
    write_box_export(run, tmp_path, exported)
    manifest = __import__("json").loads((tmp_path / "manifest.json").read_text())
    (entry,) = manifest["files"]
    assert entry["box_rule"] == "otsu" and entry["percentile"] is None and entry["box_rule_text"] == "Otsu"
    assert "Otsu's threshold" in entry["boxes_note"]
    det = run.detections(m, pr, otsu)
    assert entry["boxes"] == len(det)
    assert len((tmp_path / f"{m}.{pr}.otsu.csv").read_text().strip().splitlines()) == len(det) + 1
    assert entry["run_mAP"]["voc07"]["0.5"] == run.ap(m, pr, "voc07", otsu, 0.5).mAP
