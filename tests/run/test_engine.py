"""Run store, resumable grid computation, the evaluate/score/heatmaps commands, end to end on the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from surgery_core.model.methods import DEFAULT_METHODS
from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
from surgery_core.run.engine import compute_grids, load_dataset, resolve_model
from surgery_core.run.store import RunStore

REPO_CMD = [sys.executable, "-m", "surgery_core.cli"]


@pytest.fixture()
def small_cfg(demo_checkpoint):
    return RunConfig(data=DataConfig(limit=24), model=ModelConfig(checkpoint=str(demo_checkpoint)),
                     figure_samples=1)


def test_store_entries_are_atomic_and_damage_is_recomputed(tmp_path, small_cfg):
    store = RunStore(tmp_path / "store")
    ds = load_dataset(small_cfg)
    loaded = resolve_model(small_cfg, "cpu")
    first = compute_grids(small_cfg, ds.subset(range(10)), loaded, store)  # a run that "stopped" after 10
    assert first.computed == 10
    full = compute_grids(small_cfg, ds, loaded, store)
    assert (full.computed, full.reused) == (14, 10)  # resumed where it stopped
    again = compute_grids(small_cfg, ds, loaded, store)
    assert again.computed == 0 and again.reused == 24
    for m in small_cfg.methods:
        np.testing.assert_array_equal(again.grids[m], full.grids[m])
    # No temporary files are left behind, and a damaged entry is never served.
    entries = sorted((tmp_path / "store" / "grids").rglob("*"))
    assert not [p for p in entries if p.name.endswith(".tmp")]
    victim = next(p for p in entries if p.suffix == ".npz")
    victim.write_bytes(victim.read_bytes()[:50])
    healed = compute_grids(small_cfg, ds, loaded, store)
    for m in small_cfg.methods:
        np.testing.assert_array_equal(healed.grids[m], full.grids[m])


def test_heatmap_key_ignores_box_settings_but_not_model_settings(small_cfg):
    from surgery_core.run.config import heatmap_key

    ident = {"arch": "x", "quickgelu": False, "checkpoint_sha256": "ab"}
    k = heatmap_key(small_cfg, ident, ("ship",), 224)
    boxes = small_cfg.model_copy(update={"boxes": small_cfg.boxes.model_copy(update={"percentile": 75.0})})
    assert heatmap_key(boxes, ident, ("ship",), 224) == k and boxes.run_hash != small_cfg.run_hash
    assert heatmap_key(small_cfg.model_copy(update={"surgery_depth": 3}), ident, ("ship",), 224) != k
    assert heatmap_key(small_cfg, ident | {"checkpoint_sha256": "cd"}, ("ship",), 224) != k
    assert heatmap_key(small_cfg, ident, ("ship", "vehicle"), 224) != k
    assert heatmap_key(small_cfg, ident, ("ship",), 448) != k


def test_evaluate_command_writes_the_reports(tmp_path, demo_checkpoint, demo_env):
    out = tmp_path / "eval"
    cmd = REPO_CMD + ["evaluate", "--checkpoint", str(demo_checkpoint), "--limit", "30", "--figures", "2",
                      "--out", str(out), "--percentile", "75"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=demo_env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "30 computed now" in first.stdout
    for name in ("map_results.json", "multi_iou_results.json", "sweep_results.json",
                 "heatmap_quality_analysis.json", "evaluation_report.md"):
        assert (out / name).is_file(), name
    maps = json.loads((out / "map_results.json").read_text())
    assert maps["box_rule"].startswith("percentile 75 ")
    assert tuple(maps["tables"]) == DEFAULT_METHODS  # every registered method by default
    multi = json.loads((out / "multi_iou_results.json").read_text())
    assert list(multi["results"]["vv_mixed"]["present"]["voc07"]["mAP_per_iou"]) == \
        ["0.05", "0.1", "0.15", "0.2", "0.3", "0.5"]
    for m in DEFAULT_METHODS:
        assert len(list((out / m).glob("*.png"))) == 2
    report = (out / "evaluation_report.md").read_text()
    assert "VOC2007 11-point" in report and "Pointing game" in report
    glance = report[report.index("## Methods at a glance"):].split("\n\n")[1].splitlines()
    assert glance[0].startswith("| method | pointing game | mAP@0.05 | mAP@0.5 |") and len(glance) == 2 + len(DEFAULT_METHODS)
    assert "github.com/sinahmr/NACLIP" in report
    second = subprocess.run(cmd, capture_output=True, text=True, env=demo_env)
    assert second.returncode == 0 and "0 computed now, 30 from the store" in second.stdout
    assert json.loads((out / "map_results.json").read_text())["tables"] == maps["tables"]


def test_score_command_on_real_dior_annotations(tmp_path, dior_full):
    from surgery_core.data.datasets import load_dior

    ds = load_dior(dior_full, "test", limit=400)
    gt = ds.ground_truth()
    rng = np.random.default_rng(0)
    keep = rng.random(len(gt)) < 0.7  # recall 0.7, perfect precision
    rows = ["image_id,class,xmin,ymin,xmax,ymax,score"]
    for i in np.nonzero(keep)[0]:
        x1, y1, x2, y2 = gt.xyxy[i]
        rows.append(f"{ds.images[gt.image[i]].image_id},{ds.classes[gt.class_id[i]]},{x1},{y1},{x2},{y2},"
                    f"{rng.random():.6f}")
    csv = tmp_path / "dets.csv"
    csv.write_text("\n".join(rows) + "\n")
    split_dir = tmp_path / "DIOR"
    # Score against a split holding exactly those 400 images.
    import shutil

    shutil.copytree(dior_full / "Annotations", split_dir / "Annotations")
    (split_dir / "ImageSets" / "Main").mkdir(parents=True)
    (split_dir / "ImageSets" / "Main" / "test.txt").write_text("\n".join(r.image_id for r in ds.images) + "\n")
    out = tmp_path / "score.json"
    res = subprocess.run(REPO_CMD + ["score", "--dior", str(split_dir), "--split", "test", "--detections", str(csv),
                                     "--iou", "0.5", "--interp", "voc", "--json", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["interp"] == "voc" and doc["iou"] == 0.5
    # All-point AP with perfect precision equals the recall reached in each class.
    for c, ap in doc["per_class"].items():
        if ap is not None:
            sel = gt.class_id == ds.classes.index(c)
            assert ap == pytest.approx(keep[sel].mean(), abs=1e-9)
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,class,xmin,ymin,xmax,ymax,score\n99999999,ship,0,0,1,1,0.5\n")
    res = subprocess.run(REPO_CMD + ["score", "--dior", str(split_dir), "--detections", str(bad), "--iou", "0.5",
                                     "--interp", "voc07", "--json", str(out)], capture_output=True, text=True)
    assert res.returncode == 2 and "bad.csv" in res.stderr and "line 2" in res.stderr


def test_heatmaps_command_writes_raw_grids(tmp_path, demo_checkpoint, dior_samples):
    from surgery_core.demo.model import DEMO_ARCH

    out = tmp_path / "grids.npz"
    img = dior_samples / "JPEGImages-trainval" / "00001.jpg"
    res = subprocess.run(REPO_CMD + ["heatmaps", "--arch", DEMO_ARCH, "--checkpoint", str(demo_checkpoint),
                                     "--image", str(img), "--classes", "airplane,ship,storagetank", "--out", str(out),
                                     "--size", "448"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    z = np.load(out)
    assert list(z["classes"]) == ["airplane", "ship", "storagetank"]
    for m in DEFAULT_METHODS:
        assert z[m].shape == (3, 14, 14) and z[m].dtype == np.float32
    # Raw similarity, before min-max: class-set surgery sums to zero over classes at every cell.
    np.testing.assert_allclose(z["vv_mixed"].sum(axis=0), 0, atol=1e-5)
    assert -1 <= z["standard"].min() and z["standard"].max() <= 1 and z["standard"].max() < 0.999


def test_methods_command_and_option(tmp_path, demo_checkpoint, dior_samples):
    from surgery_core.demo.model import DEMO_ARCH

    res = subprocess.run(REPO_CMD + ["methods"], capture_output=True, text=True)
    assert res.returncode == 0
    for m in DEFAULT_METHODS:
        assert f"\n{m} " in "\n" + res.stdout
    assert "SimFeatUp" in res.stdout and "github.com/WalBouss/GEM @ 5fa677c" in res.stdout
    out = tmp_path / "two.npz"
    base = REPO_CMD + ["heatmaps", "--arch", DEMO_ARCH, "--checkpoint", str(demo_checkpoint), "--image",
                       str(dior_samples / "JPEGImages-trainval" / "00001.jpg"), "--classes", "ship,airplane",
                       "--out", str(out)]
    res = subprocess.run(base + ["--methods", "naclip,vv_mixed"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(k for k in np.load(out).files if k not in ("classes", "class_prob")) == ["naclip", "vv_mixed"]
    bad = subprocess.run(base + ["--methods", "naclip,clip_es"], capture_output=True, text=True)
    assert bad.returncode == 2 and "clip_es" in bad.stderr and "Traceback" not in bad.stderr

