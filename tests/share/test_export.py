"""Exports of a run (``surgery export boxes|grids|fiftyone``, ``evaluate --export-boxes``) and ``surgery score``
on every dataset kind: the exported boxes score to the run's own AP, bit for bit up to 1e-12."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from surgery_core.cli import main

METHODS = ("standard", "vv_mixed")


@pytest.fixture(scope="module")
def run():
    """The demo model on the five real DIOR samples (800 px images: box corners are fractions of a pixel, so
    float formatting matters), two methods, both protocols, every interpolation."""
    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run

    return Run.open(RunConfig(data=DataConfig(kind="samples"), methods=METHODS))


def _score(argv: list[str], out: Path) -> dict:
    assert main(["score", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _same(run_res, scored: dict, classes) -> None:
    """mAP per IoU and every class's AP per IoU agree to 1e-12 (None = no ground truth on both sides)."""
    keys = list(scored["mAP_per_iou"])
    assert len(keys) == len(run_res.iou_thresholds)
    for t, key in enumerate(keys):
        assert scored["mAP_per_iou"][key] == pytest.approx(run_res.map_per_iou[t], abs=1e-12)
        for k, c in enumerate(classes):
            want = run_res.ap[t, k]
            got = scored["per_class_per_iou"][c][key]
            assert (got is None) if np.isnan(want) else got == pytest.approx(want, abs=1e-12)


def test_export_boxes_round_trip_is_exact(run, tmp_path, capsys):
    """Every exported file (COCO results JSON and CSV), scored by `surgery score` against the exported ground
    truth, gives the run's own AP at every interpolation and each of the run's IoUs (and COCO's .50:.95)."""
    from surgery_core.eval.ap import COCO_IOUS

    out = tmp_path / "boxes"
    assert main(["export", "boxes", run.run_hash[:6], "--out", str(out)]) == 0
    assert "surgery score --coco" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["run_hash"] == run.run_hash
    assert len(manifest["files"]) == len(METHODS) * 2
    ious = ",".join(repr(t) for t in run.cfg.iou_thresholds)
    fractional = 0
    for f in manifest["files"]:
        m, proto, p = f["method"], f["protocol"], f["percentile"]
        det = run.detections(m, proto, p)
        assert f["boxes"] == len(det) > 0
        fractional += int(np.any(det.xyxy != np.round(det.xyxy)))
        for name in (f["results"], f["csv"]):
            for interp in ("voc07", "voc", "coco"):
                scored = _score(["--coco", str(out / "ground_truth.json"), "--detections", str(out / name),
                                 "--interp", interp, "--iou", ious], tmp_path / "s.json")
                _same(run.ap(m, proto, interp, p, tuple(run.cfg.iou_thresholds)), scored, run.classes)
                assert f["run_mAP"][interp]["0.5"] == pytest.approx(scored["mAP_per_iou"]["0.5"], abs=1e-12)
            head = _score(["--coco", str(out / "ground_truth.json"), "--detections", str(out / name),
                           "--interp", "coco"], tmp_path / "h.json")
            assert head["mAP"] == pytest.approx(run.ap(m, proto, "coco", p, COCO_IOUS).mAP, abs=1e-12)
            assert head["mAP"] == pytest.approx(f["run_mAP"]["coco"]["50:95"], abs=1e-12)
    assert fractional, "the samples' boxes should have fractional corners (800 px images, 224 px working map)"


@pytest.mark.parametrize("rule", [["--box-rule", "otsu"], ["--box-rule", "fixed", "--fixed-value", "0.6"]])
def test_export_under_other_box_rules_round_trips(run, tmp_path, rule):
    """Otsu and a fixed value, as exported cells: the files are named after the rule, say it, and score to the
    run's own AP of that cell."""
    from surgery_core.eval.boxes import BoxRule

    cut = BoxRule("otsu") if rule[1] == "otsu" else BoxRule("fixed", 0.6)
    tag = "otsu" if rule[1] == "otsu" else "fixed0.6"
    out = tmp_path / "b"
    assert main(["export", "boxes", run.run_hash, "--out", str(out), "--methods", "vv_mixed", *rule]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["results"] for f in manifest["files"]] == [f"vv_mixed.present.{tag}.json", f"vv_mixed.open.{tag}.json"]
    assert all(("Otsu" if tag == "otsu" else "fixed value 0.6") in f["boxes_note"] for f in manifest["files"])
    for proto in ("present", "open"):
        for name in (f"vv_mixed.{proto}.{tag}.json", f"vv_mixed.{proto}.{tag}.csv"):
            for interp in ("voc07", "coco"):
                scored = _score(["--coco", str(out / "ground_truth.json"), "--detections", str(out / name),
                                 "--interp", interp, "--iou", "0.1,0.5"], tmp_path / "s.json")
                _same(run.ap("vv_mixed", proto, interp, cut, (0.1, 0.5)), scored, run.classes)
    assert main(["export", "boxes", run.run_hash, "--out", str(out), "--box-rule", "fixed"]) == 2


def test_exported_csv_is_bit_exact_and_results_read_by_dataset_folder(run, tmp_path):
    """The CSV holds the very float64 corners and scores; the plain results list scores the same against the
    samples themselves (`--samples`: DIOR category numbers and numeric stems)."""
    from surgery_core.data.datasets import load_samples
    from surgery_core.eval.scoring import read_detections

    out = tmp_path / "b"
    assert main(["export", "boxes", run.run_hash, "--out", str(out), "--methods", "vv_mixed",
                 "--protocols", "open"]) == 0
    det = run.detections("vv_mixed", "open", run.cfg.boxes.percentile)
    back = read_detections(out / "vv_mixed.open.p90.csv", load_samples())
    assert np.array_equal(back.xyxy, det.xyxy) and np.array_equal(back.score, det.score)
    assert np.array_equal(back.class_id, det.class_id) and np.array_equal(back.image, det.image)
    for interp in ("voc07", "coco"):
        scored = _score(["--samples", "--detections", str(out / "vv_mixed.open.p90.json"), "--interp", interp,
                         "--iou", "0.1,0.5"], tmp_path / "s.json")
        _same(run.ap("vv_mixed", "open", interp, run.cfg.boxes.percentile, (0.1, 0.5)), scored, run.classes)


def test_exported_files_read_by_coco_tools(run, tmp_path):
    """pycocotools reads the ground truth and loads every results file against it (loadRes checks that every
    image id is one of the ground truth's); categories carry DIOR's numbers and names."""
    from pycocotools.coco import COCO

    out = tmp_path / "b"
    assert main(["export", "boxes", run.run_hash, "--out", str(out), "--percentile", "75"]) == 0
    gt = COCO(str(out / "ground_truth.json"))
    assert {c["name"]: c["id"] for c in gt.loadCats(gt.getCatIds())}["airplane"] == 1
    assert sorted(gt.getImgIds()) == sorted(int(run.dataset.images[i].image_id) for i in run.grids.rows)
    assert len(gt.getAnnIds()) == len(run.gt)
    for name in (f"{m}.{p}.p75.json" for m in METHODS for p in ("present", "open")):
        dt = gt.loadRes(str(out / name))
        assert len(dt.getAnnIds()) == len(run.detections(name.split(".")[0], name.split(".")[1], 75.0))


def test_export_errors_are_one_line(run, tmp_path, capsys):
    assert main(["export", "boxes", "ffffffffffff", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no stored run matches 'ffffffffffff'" in err and "\n" not in err
    assert main(["export", "boxes", run.run_hash, "--out", str(tmp_path / "x"), "--methods", "gem"]) == 2
    assert "has no method gem; it has standard, vv_mixed" in capsys.readouterr().err
    assert main(["export", "grids", run.run_hash, "--out", str(tmp_path / "g.npz"), "--methods", "nope"]) == 2
    assert "unknown method(s) nope" in capsys.readouterr().err


def test_export_grids_npz_reads_with_numpy_alone(run, tmp_path):
    out = tmp_path / "grids.npz"
    assert main(["export", "grids", run.run_hash, "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert list(z["method_names"]) == list(METHODS) and list(z["class_names"]) == list(run.classes)
        assert str(z["run_hash"]) == run.run_hash
        assert json.loads(str(z["model"])) == run.model_info
        assert list(z["image_ids"]) == [run.dataset.images[i].image_id for i in run.grids.rows]
        for m in METHODS:
            assert z[f"grid_{m}"].dtype == np.float32 and np.array_equal(z[f"grid_{m}"], run.grids.grids[m])
        assert np.array_equal(z["class_prob"], run.grids.probs.astype(np.float32))
        assert json.loads(str(z["meta"]))["values"].startswith("raw similarity")
    half = tmp_path / "half"
    assert main(["export", "grids", run.run_hash, "--out", str(half), "--dtype", "float16", "--per-image",
                 "--methods", "vv_mixed"]) == 0
    files = sorted(half.glob("*.npz"))
    assert len(files) == len(run.grids.rows)
    n = 2
    image_id = run.dataset.images[int(run.grids.rows[n])].image_id
    with np.load(half / f"{image_id}.npz", allow_pickle=False) as z:
        assert str(z["image_id"]) == image_id and list(z["method_names"]) == ["vv_mixed"]
        g = z["grid_vv_mixed"]
        assert g.dtype == np.float16 and g.shape == run.grids.grids["vv_mixed"][n].shape
        assert np.allclose(g, run.grids.grids["vv_mixed"][n], rtol=1e-3, atol=1e-4)
    assert json.loads((half / "manifest.json").read_text())["dtype"] == "float16"


@pytest.fixture(scope="module")
def fiftyone_export(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fiftyone") / "fo"
    assert main(["export", "fiftyone", run.run_hash, "--out", str(out), "--protocol", "open"]) == 0
    return out


def test_export_fiftyone_files(run, fiftyone_export):
    """COCO files the importer reads (checked with faster-coco-eval's reader), one per field; heatmaps as 2-D
    8-bit PNGs equal to the working map."""
    import cv2
    from faster_coco_eval import COCO

    from surgery_core.eval.maps import working_map
    from surgery_core.share.export_fiftyone import heatmap_field

    out = fiftyone_export
    gt = COCO(str(out / "ground_truth.json"))
    names = {img["id"]: img["file_name"] for img in gt.dataset["images"]}
    folder = json.loads((out / "manifest.json").read_text())["image_folder"]
    assert all((Path(folder) / n).is_file() for n in names.values())
    for m in METHODS:
        pred = COCO(str(out / "predictions" / f"{m}.json"))
        assert pred.dataset["images"] == gt.dataset["images"]
        assert pred.dataset["categories"] == gt.dataset["categories"]
        anns = pred.dataset["annotations"]
        assert len(anns) == len(run.detections(m, "open", 90.0)) and all("score" in a for a in anns)
    fields = json.loads((out / "heatmaps.json").read_text())
    n, i = 0, int(run.grids.rows[0])
    rec = run.dataset.images[i]
    k = int(rec.labels[0])
    rel = fields[heatmap_field("vv_mixed", run.classes[k])][rec.path.name]
    png = cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED)
    assert png.ndim == 2 and png.dtype == np.uint8
    want = working_map(run.grids.grids["vv_mixed"][n, k], rec.width, rec.height, run.cfg.boxes.box_resolution)
    assert np.array_equal(png, np.clip(np.rint(want * 255), 0, 255).astype(np.uint8))
    assert sum(len(v) for v in fields.values()) == len(METHODS) * sum(
        len(np.unique(run.dataset.images[j].labels)) for j in run.grids.rows)


def test_fiftyone_snippet_loads_the_export(run, fiftyone_export, monkeypatch):
    """The documented snippet, run where FiftyOne is installed: one dataset, ground truth plus a field per method
    and heatmap fields (FiftyOne is an optional extra: skipped without it)."""
    fo = pytest.importorskip("fiftyone")
    import runpy

    from surgery_core.share.export_fiftyone import heatmap_field

    rec = run.dataset.images[int(run.grids.rows[0])]
    k = int(rec.labels[0])
    monkeypatch.setattr("sys.argv", ["load_fiftyone.py"])  # the image folder written into the snippet
    ns = runpy.run_path(str(fiftyone_export / "load_fiftyone.py"), run_name="surgery_export_test")
    ds = ns["dataset"]
    try:
        assert len(ds) == len(run.grids.rows)
        assert ds.count("ground_truth.detections") == len(run.gt)
        assert ds.count("vv_mixed.detections") == len(run.detections("vv_mixed", "open", 90.0))
        assert isinstance(ds.first()[heatmap_field("vv_mixed", run.classes[k])], fo.Heatmap)
    finally:
        ds.delete()


def test_evaluate_export_boxes(tmp_path, demo_env):
    """`surgery evaluate --export-boxes` writes the same files into OUT/boxes/."""
    import subprocess
    import sys

    out = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-m", "surgery_core", "evaluate", "--samples", "--methods", "vv_mixed",
                        "--protocols", "present", "--figures", "0", "--export-boxes", "--out", str(out)],
                       env=demo_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in (out / "boxes").iterdir()} == {
        "ground_truth.json", "manifest.json", "vv_mixed.present.p90.json", "vv_mixed.present.p90.csv"}
    rows = list(csv.reader(io.StringIO((out / "boxes" / "vv_mixed.present.p90.csv").read_text())))
    assert rows[0] == ["image_id", "class", "xmin", "ymin", "xmax", "ymax", "score"] and len(rows) > 1


def test_score_reads_coco_and_samples(dior_samples, tmp_path):
    """`surgery score --coco` maps a plain results list through the ground-truth file's own image and category
    ids (not 1..K positions); `--samples` reads the shipped pairs."""
    from surgery_core.data.datasets import load_samples

    ds = load_samples()
    cats = [{"id": 7 + 3 * k, "name": c} for k, c in enumerate(ds.classes)]
    images = [{"id": 100 + n, "file_name": f"{r.image_id}.jpg", "width": r.width, "height": r.height}
              for n, r in enumerate(ds.images)]
    anns, results = [], []
    for n, r in enumerate(ds.images):
        for (x1, y1, x2, y2), k in zip(r.xyxy.tolist(), r.labels.tolist()):
            box = [x1, y1, x2 - x1, y2 - y1]
            anns.append({"id": len(anns) + 1, "image_id": 100 + n, "category_id": 7 + 3 * k, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
            results.append({"image_id": 100 + n, "category_id": 7 + 3 * k, "bbox": box, "score": 0.5})
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results))
    for interp in ("voc07", "coco"):
        r = _score(["--coco", str(gt), "--detections", str(dets), "--interp", interp], tmp_path / "o.json")
        assert r["mAP"] == pytest.approx(1.0) and sum(r["n_det"].values()) == len(results)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 100, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    assert main(["score", "--coco", str(gt), "--detections", str(bad)]) == 2
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("image_id,class,xmin,ymin,xmax,ymax,score\n" + "".join(
        f"{r.image_id},{ds.classes[k]},{x1},{y1},{x2},{y2},0.9\n"
        for r in ds.images for (x1, y1, x2, y2), k in zip(r.xyxy.tolist(), r.labels.tolist())))
    r = _score(["--samples", "--detections", str(csv_path), "--interp", "voc"], tmp_path / "o.json")
    assert r["mAP"] == pytest.approx(1.0) and r["dataset"].startswith("DIOR samples")


def test_per_class_ap_zip_holds_the_same_files(run):
    """The Per-class AP page's one download: the same files as `surgery export boxes`, in one zip."""
    from surgery_core.share.export_boxes import box_export_zip, cells, cell_files

    exported = cells(run, ["vv_mixed"], ["present"], None)
    z = zipfile.ZipFile(io.BytesIO(box_export_zip(run, exported)))
    assert set(z.namelist()) == {"ground_truth.json", "manifest.json", "vv_mixed.present.p90.json",
                                 "vv_mixed.present.p90.csv"}
    files = cell_files(run, exported[0])
    assert z.read("vv_mixed.present.p90.csv").decode() == files["vv_mixed.present.p90.csv"]
