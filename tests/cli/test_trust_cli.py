"""Nothing that misleads on the command line (issue 21, points 1-3 and 12): random weights are named in every
product of a run and no method is marked best; a run that reads no image is refused in one line with the fix, a
run with some images missing says so at the end, a COCO file finds its images beside it; ``surgery heatmaps``
warns like ``evaluate --samples`` and draws pictures; one progress bar per phase."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from tests.cli.test_cli_errors import SAMPLE_IMAGE, assert_one_line_refusal, env, run_main  # noqa: F401 - fixtures

from surgery_core.data.datasets import load_dior
from surgery_core.run.engine import SAMPLES_ROOT

RANDOM = ["--arch", "Demo-ViT-32", "--random-weights"]
SMALL = ["--limit", "3", "--methods", "standard,vv_vv", "--figures", "1", "--no-progress"]


def coco_of_samples(folder, ids=None) -> dict:
    """The shipped DIOR samples as a COCO file (``file_name`` relative to the images' folder)."""
    ds = load_dior(SAMPLES_ROOT, "all")
    doc = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": c} for k, c in enumerate(ds.classes)]}
    for n, rec in enumerate(ds.images):
        if ids is not None and rec.image_id not in ids:
            continue
        doc["images"].append({"id": n, "file_name": f"{rec.image_id}.jpg", "width": rec.width, "height": rec.height})
        for (x1, y1, x2, y2), lab in zip(rec.xyxy.tolist(), rec.labels.tolist()):
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": n, "category_id": lab + 1,
                                       "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(doc))
    return doc


# ------------------------------------------------------------------------------------------ 1. random weights
def test_random_weights_are_named_in_every_product_and_no_method_is_marked_best(env, capfd):
    out = env / "out"
    code, stdout, err = run_main(capfd, ["evaluate", "--samples", *RANDOM, *SMALL, "--out", str(out)])
    assert code == 0, err
    assert "RANDOM WEIGHTS" in stdout.splitlines()[-1]  # the last word, where it cannot scroll away
    assert "pointing game (RANDOM WEIGHTS: meaningless)" in stdout
    for name in ("map_results", "multi_iou_results", "sweep_results", "heatmap_quality_analysis"):
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["random_weights"] is True and "RANDOM WEIGHTS" in doc["model_note"], name
    md = (out / "evaluation_report.md").read_text()
    assert "(RANDOM WEIGHTS)" in md.splitlines()[0] and "**random weights** (no checkpoint)" in md
    glance = md.split("## Methods at a glance")[1].split("\n## ")[0]
    assert "random weights: no method marked best" in glance and "**" not in glance
    run_json = next((env / "store" / "runs").glob("*/run.json"))
    assert json.loads(run_json.read_text())["random_weights"] is True


def test_random_weights_in_figure_titles_html_report_and_snapshots(env, capfd, monkeypatch):
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.share import report
    from surgery_core.share.html import build_report_html
    from surgery_core.share.snapshots import view_state

    cfg = RunConfig(data=DataConfig(kind="samples", limit=2), model=ModelConfig(arch="Demo-ViT-32"),
                    methods=("standard", "vv_vv"))
    run = Run.open(cfg, random_weights=True)
    assert run.random_weights and run.summary()["random_weights"]
    seen = {}
    monkeypatch.setattr(report, "three_column", lambda *a, **k: seen.setdefault("titles", a[5]) and
                        np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(report, "comparison", lambda *a, **k: seen.setdefault("heading", a[5]) and
                        np.zeros((4, 4, 3), np.uint8))
    i = report.sample_indices(run, 1)[0]
    c = report.main_class(run.dataset.images[i])
    report.figure(run, "standard", i, c)
    report.comparison_figure(run, i, c)
    assert seen["titles"][0].startswith("RANDOM WEIGHTS") and seen["heading"].startswith("RANDOM WEIGHTS")
    monkeypatch.undo()
    page = build_report_html(run, samples=[])
    assert "RANDOM WEIGHTS" in page.split("</h1>")[0] and 'class="best"' not in page
    assert "no method marked best: random weights" in page
    assert view_state(run, "compare")["model"]["checkpoint_sha256"] is None  # what a snapshot keeps: the fact


def test_a_real_checkpoint_is_not_random_and_best_methods_stay_marked(env, capfd):
    code, stdout, err = run_main(capfd, ["evaluate", "--samples", *SMALL, "--out", str(env / "o")])
    assert code == 0, err
    doc = json.loads((env / "o" / "map_results.json").read_text())
    assert doc["random_weights"] is False and "RANDOM" not in stdout
    assert "**" in (env / "o" / "evaluation_report.md").read_text().split("## Methods at a glance")[1].split("\n## ")[0]


# ------------------------------------------------------------------------------------------ 2. empty runs
def test_coco_without_its_images_is_refused_with_the_folder_and_the_fix(env, capfd):
    coco_of_samples(env / "ann")
    line = assert_one_line_refusal(*run_main(capfd, ["evaluate", "--coco", str(env / "ann" / "instances.json"),
                                                     *SMALL, "--out", str(env / "o")]),
                                   "none of the 3 images has an image file", str(env / "ann"), "--images")
    assert line.startswith("surgery evaluate: error: ")
    assert not (env / "o").exists()


def test_a_mistyped_images_folder_is_refused(env, capfd):
    coco_of_samples(env / "ann")
    assert_one_line_refusal(*run_main(capfd, ["evaluate", "--coco", str(env / "ann" / "instances.json"), "--images",
                                              str(env / "JPEGimages"), *SMALL]),
                            str(env / "JPEGimages"), "images folder of instances.json does not exist")


def test_an_empty_split_is_refused_with_the_fix(env, capfd):
    root = env / "dior"
    shutil.copytree(SAMPLES_ROOT, root)
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    assert_one_line_refusal(*run_main(capfd, ["evaluate", "--dior", str(root), "--split", "test", *SMALL]),
                            str(root), "the 'test' split has no images", "--split all")


def test_coco_images_default_to_the_json_folder_and_missing_ones_are_counted_at_the_end(env, capfd):
    folder = env / "coco"
    coco_of_samples(folder)
    ids = [p.stem for p in sorted((SAMPLES_ROOT / "JPEGImages-trainval").glob("*.jpg"))]
    for image_id in ids[:2]:  # the third image of the run is missing
        shutil.copy(SAMPLES_ROOT / "JPEGImages-trainval" / f"{image_id}.jpg", folder)
    code, stdout, err = run_main(capfd, ["evaluate", "--coco", str(folder / "instances.json"), *SMALL,
                                         "--out", str(env / "o")])
    assert code == 0, err
    assert "2/3 images with heatmaps" in stdout
    assert "note: 1 of 3 images were left out" in stdout.splitlines()[-2]  # at the end, before the model warning


# ------------------------------------------------------------------------------------------ 3. heatmaps
def test_heatmaps_on_a_photograph_with_the_demo_model_warns_and_draws_pictures(env, capfd):
    png = env / "png"
    code, stdout, err = run_main(capfd, ["heatmaps", "--image", SAMPLE_IMAGE, "--classes", "airplane,ship",
                                         "--methods", "standard,gem", "--out", str(env / "h.npz"), "--png", str(png)])
    assert code == 0, err
    assert stdout.splitlines()[-1].startswith("WARNING: The demo model was trained only on synthetic scenes")
    image = cv2.imread(SAMPLE_IMAGE)
    for m in ("standard", "gem"):
        pic = cv2.imread(str(png / f"{m}.png"))
        assert pic is not None and pic.shape[0] > image.shape[0] and pic.shape[1] > 3 * image.shape[1]  # 3 panels
        assert pic.std() > 10  # a drawn picture, not a blank page


def test_heatmaps_on_a_demo_scene_do_not_warn(env, capfd):
    from surgery_core.demo.scenes import generate_dataset

    generate_dataset(env / "scenes", seed=3, count=2)
    scene = next((env / "scenes").glob("JPEGImages-*/*.jpg"))
    code, stdout, err = run_main(capfd, ["heatmaps", "--image", str(scene), "--classes", "airplane",
                                         "--methods", "standard", "--out", str(env / "h.npz")])
    assert code == 0 and "WARNING" not in stdout


# ------------------------------------------------------------------------------------------ 12. one bar per phase
def test_evaluate_shows_one_bar_per_phase(env, capfd):
    argv = ["evaluate", "--samples", "--limit", "3", "--methods", "standard,vv_vv,gem", "--figures", "1",
            "--progress", "--out", str(env / "o")]
    code, stdout, err = run_main(capfd, argv)
    assert code == 0, err
    finished = err.split("\n")  # tqdm ends each bar with a newline; its updates are carriage returns
    for phase in ("boxes (", "sweep (", "AP at p", "quality at", "figures"):
        bars = [line for line in finished if phase in line.split("\r")[-1]]
        assert len(bars) == 1, (phase, bars)
    total = [line for line in finished if "boxes (" in line][0].split("\r")[-1]
    assert "3 methods" in total
