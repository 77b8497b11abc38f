"""Per-(image, class) tables and single-sample panels (:mod:`surgery_core.run.pairs`), each checked against a direct
computation from the run's boxes, ground truth and quality functions."""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.eval.maps import working_map
from surgery_core.eval.matching import box_iou, match_detections
from surgery_core.eval.protocols import Cell
from surgery_core.eval.quality import heatmap_quality, quality_records
from surgery_core.run import pairs
from surgery_core.run.evaluation import box_params_for

METHOD, PROTO, PCT, IOU = "vv_mixed", "present", 75.0, 0.1
CELL = Cell.of(METHOD, PROTO, PCT)


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_checkpoint):
    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    cfg = RunConfig(data=DataConfig(limit=12))
    return Run.open(cfg, RunStore(tmp_path_factory.mktemp("pairs-store")), device="cpu")


def test_pair_outcomes_match_a_direct_count(run):
    df = pairs.pair_outcomes(run, CELL, IOU)
    gt = run.gt
    det = match_detections(gt, run.detections(METHOD, PROTO, PCT), IOU)
    expected = {}
    for i, c in sorted(set(zip(gt.image.tolist(), gt.class_id.tolist()))):
        g = gt.xyxy[(gt.image == i) & (gt.class_id == c)]
        sel = (det.image == i) & (det.class_id == c)
        best = float(box_iou(det.xyxy[sel], g).max()) if sel.any() else 0.0
        expected[(i, c)] = (len(g), int(sel.sum()), int(det.extra["tp"][sel].sum()), best)
    assert len(df) == len(expected) and df["n_det"].sum() > 0 and df["n_tp"].sum() > 0
    for r in df.itertuples():
        n_gt, n_det, n_tp, best = expected[(r.image, r.class_id)]
        assert (r.n_gt, r.n_det, r.n_tp) == (n_gt, n_det, n_tp)
        assert r.best_iou == pytest.approx(best, abs=1e-9)
        assert r.image_id == run.dataset.images[r.image].image_id
        assert df.loc[r.Index, "class"] == run.classes[r.class_id]
    # every TP of the run is counted once: the totals equal AP's matching over the whole run
    assert df["n_tp"].sum() == det.extra["tp"].sum()


def test_pair_quality_and_outcomes_carry_the_library_quality(run):
    recs = quality_records(run.grids.grids[METHOD], run.image_sizes(), run.gt, run.cfg.boxes, (),
                           image_ids=run.grids.rows)
    direct = {(r.image, r.class_id): r for r in recs}
    q = pairs.pair_quality(run, METHOD)
    assert len(q) == len(direct)
    for r in q.itertuples():
        d = direct[(r.image, r.class_id)]
        assert (r.pointing_hit, r.energy, r.gt_mean, r.gt_max) == (d.pointing_hit, d.energy, d.gt_mean, d.gt_max)
    df = pairs.pair_outcomes(run, CELL, IOU, quality=q)
    for r in df.itertuples():
        assert r.pointing_hit == direct[(r.image, r.class_id)].pointing_hit
        assert r.energy == direct[(r.image, r.class_id)].energy


def test_panel_matches_boxes_matching_and_quality(run):
    checked = 0
    for image in run.grids.rows.tolist()[:6]:
        rec = run.dataset.images[image]
        for cls in sorted(set(rec.labels.tolist())) + [next(c for c in range(len(run.classes))
                                                            if c not in rec.labels)]:
            p = pairs.panel(run, CELL, image, cls, IOU)
            live = run.boxes_for(METHOD, image, cls, PCT, PROTO)
            xyxy, score = live.xyxy, live.score
            if PROTO == "present" and cls not in rec.labels:  # the present protocol cuts no box for it
                assert len(live) == 0
            np.testing.assert_array_equal(p.det.xyxy, xyxy)
            np.testing.assert_array_equal(p.det.score, score)
            gt = rec.xyxy[rec.labels == cls]
            grid = run.grid(METHOD, image, cls)
            np.testing.assert_array_equal(p.grid, grid)
            assert p.map01.shape == (rec.height, rec.width)
            np.testing.assert_allclose(p.map01, working_map(grid, rec.width, rec.height, None))
            if not len(gt):
                assert p.pointing_hit is None and p.energy is None and p.best_iou is None
                assert not p.det.extra["tp"].any()
                continue
            if len(xyxy):
                np.testing.assert_allclose(p.det.extra["iou"], box_iou(xyxy, gt).max(axis=1))
            assert p.det.extra["tp"].sum() <= min(len(gt), len(xyxy))
            params = box_params_for(run.cfg, PROTO).model_copy(update={"percentile": PCT})
            q = heatmap_quality(grid, rec.width, rec.height, gt, params, (PCT,))
            assert (p.pointing_hit, p.energy, p.best_iou) == (q.pointing_hit, q.energy, q.best_iou[0])
            # the point lies where the working map is maximal
            wmap = working_map(grid, rec.width, rec.height, params.box_resolution)
            sy, sx = rec.height / wmap.shape[0], rec.width / wmap.shape[1]
            r_, c_ = int(p.point[1] / sy), int(p.point[0] / sx)
            assert wmap[min(r_, wmap.shape[0] - 1), min(c_, wmap.shape[1] - 1)] >= wmap.max() - 0.05
            checked += 1
    assert checked >= 6


def test_ap_table_rows_and_mAP(run):
    results = {m: run.ap(m, PROTO, "voc", PCT, 0.3) for m in run.cfg.methods}
    table = pairs.ap_table(results, run.classes)
    first = results[run.cfg.methods[0]]
    with_gt = [k for k in range(len(run.classes)) if first.n_gt[k] > 0]
    assert table["class"].tolist() == [run.classes[k] for k in with_gt] + ["mAP"]
    for m, res in results.items():
        np.testing.assert_allclose(table[m].iloc[:-1].to_numpy(float), res.per_class_ap[with_gt], equal_nan=True)
        assert table[m].iloc[-1] == pytest.approx(res.mAP, nan_ok=True)
        assert table[f"det {m}"].iloc[-1] == int(res.n_det.sum())
    assert table["GT"].iloc[-1] == len(run.gt)


def test_run_pair_quality_is_kept_in_the_run_folder(run, monkeypatch):
    want = pairs.pair_quality(run, METHOD)
    got = run.pair_quality(METHOD)
    assert (run.run_dir / "pair_quality" / f"{METHOD}.json").is_file()
    assert list(got.dtypes) == list(want.dtypes) and got.equals(want)
    # a NaN (e.g. no map mass) goes through the file as null and comes back NaN
    doc = (run.run_dir / "pair_quality" / f"{METHOD}.json").read_text()
    assert "NaN" not in doc
    monkeypatch.setattr(pairs, "pair_quality", lambda *a: (_ for _ in ()).throw(AssertionError("computed again")))
    again = run.pair_quality(METHOD)  # read from the file, not computed
    assert again.equals(want)
