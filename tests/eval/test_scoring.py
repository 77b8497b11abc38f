"""Reading external detection files and the `score` command logic."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from surgery_core.commands import score as score_command
from surgery_core.commands.score import add_score_arguments, run_score
from surgery_core.data.classes import DIOR_CLASSES
from surgery_core.data.detections import Detections
from surgery_core.errors import InputError
from surgery_core.eval.ap import evaluate
from surgery_core.eval.scoring import read_coco_detections, read_csv_detections, read_detections, score

K = len(DIOR_CLASSES)
STORAGETANK = DIOR_CLASSES.index("storagetank")
AIRPLANE = DIOR_CLASSES.index("airplane")
VEHICLE = DIOR_CLASSES.index("vehicle")


@dataclass(frozen=True)
class FakeImage:
    image_id: str
    width: int = 800
    height: int = 800


class FakeDataset:
    """The part of surgery_core.data.datasets.Dataset that scoring uses."""

    name = "DIOR"
    split = "test"

    def __init__(self, gt: Detections, ids=("00001", "00002", "11726")):
        self.classes = DIOR_CLASSES
        self.images = [FakeImage(i) for i in ids]
        self._gt = gt
        self._index = {i: n for n, i in enumerate(ids)}

    def ground_truth(self) -> Detections:
        return self._gt

    def index_of(self, image_id: str) -> int:
        return self._index[str(image_id)]


@pytest.fixture
def ds() -> FakeDataset:
    gt = Detections([[10, 10, 50, 50], [100, 100, 140, 160], [0, 0, 30, 30], [5, 5, 25, 45]],
                    np.ones(4), [STORAGETANK, STORAGETANK, AIRPLANE, VEHICLE], [0, 0, 2, 1])
    return FakeDataset(gt)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


CSV_OK = """image_id,class,xmin,ymin,xmax,ymax,score
00001,storage tank,10,10,50,50,0.9
00001,Storage-Tank,100,100,140,150,0.8
11726.jpg,plane,0,0,30,30,0.7
1,storagetank,200,200,210,210,0.3
00002,vehicle,5,5,25,45,0.6
"""


def test_csv_reads_aliases_and_image_id_forms(tmp_path, ds):
    det = read_csv_detections(write(tmp_path, "d.csv", CSV_OK), ds)
    assert det.class_id.tolist() == [STORAGETANK, STORAGETANK, AIRPLANE, STORAGETANK, VEHICLE]
    assert det.image.tolist() == [0, 0, 2, 0, 1]
    assert det.score.tolist() == [0.9, 0.8, 0.7, 0.3, 0.6]
    np.testing.assert_array_equal(det.xyxy[1], [100, 100, 140, 150])


def test_csv_columns_in_any_order_and_blank_lines(tmp_path, ds):
    text = "score,class,image_id,xmin,ymin,xmax,ymax,extra\n\n0.5,airplane,11726,0,0,30,30,x\n"
    det = read_detections(write(tmp_path, "d.csv", text), ds)
    assert det.image.tolist() == [2] and det.class_id.tolist() == [AIRPLANE] and det.score.tolist() == [0.5]
    empty = read_detections(write(tmp_path, "e.csv", "image_id,class,xmin,ymin,xmax,ymax,score\n"), ds)
    assert len(empty) == 0


@pytest.mark.parametrize("row,problem", [
    ("99999,airplane,0,0,1,1,0.5", "unknown image id '99999'"),
    ("00001,spaceship,0,0,1,1,0.5", "unknown class 'spaceship'"),
    ("00001,airplane,0,0,1,0.5", "expected 7 fields, found 6"),
    ("00001,airplane,0,zero,1,1,0.5", "ymin 'zero' is not a number"),
    ("00001,airplane,0,0,1,1,nan", "score 'nan' is not a finite number"),
    ("00001,airplane,0,0,1,inf,0.5", "ymax 'inf' is not a finite number"),
    ("00001,airplane,5,0,1,1,0.5", "xmax 1 < xmin 5"),
    ("00001,airplane,0,5,1,1,0.5", "ymax 1 < ymin 5"),
])
def test_csv_errors_name_file_and_line(tmp_path, ds, row, problem):
    p = write(tmp_path, "bad.csv", "image_id,class,xmin,ymin,xmax,ymax,score\n"
                                   "00001,airplane,0,0,1,1,0.5\n" + row + "\n")
    with pytest.raises(InputError) as exc:
        read_detections(p, ds)
    assert exc.value.path == str(p)
    assert exc.value.problem.startswith("line 3: ") and problem in exc.value.problem
    assert str(p) in str(exc.value)


def test_csv_header_and_file_errors(tmp_path, ds):
    with pytest.raises(InputError, match=r"line 1: header .* missing score"):
        read_detections(write(tmp_path, "h.csv", "image_id,class,xmin,ymin,xmax,ymax\n"), ds)
    with pytest.raises(InputError, match="line 1: empty file"):
        read_detections(write(tmp_path, "empty.csv", ""), ds)
    with pytest.raises(InputError, match="cannot read"):
        read_detections(tmp_path / "missing.csv", ds)
    p = tmp_path / "latin1.csv"
    p.write_bytes(b"image_id,class,xmin,ymin,xmax,ymax,score\n00001,a\xe9roplane,0,0,1,1,0.5\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_detections(p, ds)


def test_coco_results_list_uses_one_based_class_positions(tmp_path, ds):
    entries = [
        {"image_id": 1, "category_id": STORAGETANK + 1, "bbox": [10, 10, 40, 40], "score": 0.9},
        {"image_id": "11726", "category_id": AIRPLANE + 1, "bbox": [0, 0, 30, 30], "score": 0.7},
        {"image_id": 2, "category_id": VEHICLE + 1, "bbox": [5, 5, 20, 40], "score": 0.6},
    ]
    det = read_detections(write(tmp_path, "r.json", json.dumps(entries)), ds)
    assert det.class_id.tolist() == [STORAGETANK, AIRPLANE, VEHICLE]
    assert det.image.tolist() == [0, 2, 1]
    np.testing.assert_array_equal(det.xyxy, [[10, 10, 50, 50], [0, 0, 30, 30], [5, 5, 25, 45]])
    assert len(read_detections(write(tmp_path, "e.json", "[]"), ds)) == 0


def test_coco_results_with_categories_and_images(tmp_path, ds):
    doc = {"categories": [{"id": 7, "name": "Storage Tank"}, {"id": 3, "name": "plane"}],
           "images": [{"id": 55, "file_name": "11726.jpg"}],
           "annotations": [{"image_id": 55, "category_id": 3, "bbox": [0, 0, 30, 30], "score": 0.7},
                           {"image_id": "00001", "category_id": 7, "bbox": [10, 10, 40, 40], "score": 0.9}]}
    det = read_coco_detections(write(tmp_path, "r.json", json.dumps(doc)), ds)
    assert det.class_id.tolist() == [AIRPLANE, STORAGETANK] and det.image.tolist() == [2, 0]
    doc["categories"].append({"id": 9, "name": "spaceship"})
    with pytest.raises(InputError, match="'spaceship'"):
        read_coco_detections(write(tmp_path, "r2.json", json.dumps(doc)), ds)


@pytest.mark.parametrize("entry,problem", [
    ({"image_id": 99999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, "unknown image id 99999"),
    ({"image_id": 1, "category_id": 21, "bbox": [0, 0, 1, 1], "score": 0.5}, "unknown category_id 21"),
    ({"image_id": 1, "category_id": 0, "bbox": [0, 0, 1, 1], "score": 0.5}, "unknown category_id 0"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}, "is not [x, y, w, h]"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, "negative width"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}, "score 'high'"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")}, "not a finite"),
    ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}, "missing 'score'"),
    ([1, 2, 3], "not an object"),
])
def test_coco_errors_name_file_and_line(tmp_path, ds, entry, problem):
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}
    p = write(tmp_path, "bad.json", json.dumps([good, good, entry], indent=1))
    with pytest.raises(InputError) as exc:
        read_detections(p, ds)
    assert exc.value.path == str(p)
    # json.dumps(indent=1): "[" on line 1, each good entry spans 11 lines, the bad one starts on line 24.
    assert exc.value.problem.startswith("line 24 (entry 2): ") and problem in exc.value.problem


def test_coco_invalid_json(tmp_path, ds):
    with pytest.raises(InputError, match="line 2: invalid JSON"):
        read_detections(write(tmp_path, "bad.json", '[\n{"image_id": 1,,}]'), ds)
    with pytest.raises(InputError, match="expected a JSON list"):
        read_detections(write(tmp_path, "obj.json", '{"results": []}'), ds)


@pytest.mark.parametrize("interp", ["voc07", "voc", "coco"])
def test_score_dict(tmp_path, ds, interp):
    det = read_detections(write(tmp_path, "d.csv", CSV_OK), ds)
    r = score(ds, det, None, interp)
    ref = evaluate(ds.ground_truth(), det, K, None, interp)
    assert r["interp"] == interp and r["mAP"] == pytest.approx(ref.mAP)
    assert set(r["per_class"]) == set(DIOR_CLASSES)
    assert r["per_class"]["windmill"] is None                 # no ground truth: not scored, not averaged
    assert r["per_class"]["airplane"] == pytest.approx(1.0)
    assert r["n_gt"]["storagetank"] == 2 and r["n_det"]["storagetank"] == 3
    assert r["n_classes_with_gt"] == 3 and r["n_images"] == 3
    assert r["mAP"] == pytest.approx(np.mean([r["per_class"][c] for c in ("airplane", "storagetank",
                                                                         "vehicle")]))
    if interp == "coco":
        assert r["iou"] == pytest.approx(list(np.linspace(0.5, 0.95, 10)))   # AP@[.50:.05:.95]
        assert "COCO" in r["protocol_note"] and "stats[0]" in r["protocol_note"]
    else:
        assert r["iou"] == 0.5 and ">=" in r["protocol_note"]
    json.dumps(r, allow_nan=False)
    # storagetank: the 2nd box has IoU 40*50/(40*60) = 5/6 with its GT -> a hit at 0.5, a miss at 0.9.
    lo, hi = score(ds, det, [0.5, 0.9], "voc")["per_class_per_iou"]["storagetank"].values()
    assert lo == pytest.approx(1.0) and hi == pytest.approx(0.5)


def test_score_without_any_ground_truth(ds):
    empty = FakeDataset(Detections.empty())
    r = score(empty, Detections.empty(), 0.5, "voc")
    assert r["mAP"] is None and all(v is None for v in r["per_class"].values())
    json.dumps(r, allow_nan=False)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_score_arguments(p)
    return p.parse_args(argv)


def test_arguments():
    a = _parse(["--dior", "R", "--detections", "d.csv"])
    assert (a.split, a.iou, a.interp, a.json) == ("test", None, "voc07", None)
    assert _parse(["--dior", "R", "--detections", "d", "--iou", "0.3"]).iou == 0.3
    assert _parse(["--dior", "R", "--detections", "d", "--iou", "0.05,0.1,0.5"]).iou == (0.05, 0.1, 0.5)
    for bad in (["--iou", "0"], ["--iou", "x"], ["--interp", "voc12"]):
        with pytest.raises(SystemExit):
            _parse(["--dior", "R", "--detections", "d"] + bad)


def test_run_score_with_fake_dataset(tmp_path, ds, monkeypatch, capsys):
    monkeypatch.setattr(score_command, "_load_dataset", lambda args: ds)
    out = tmp_path / "out.json"
    args = _parse(["--dior", "R", "--detections", str(write(tmp_path, "d.csv", CSV_OK)), "--interp", "voc",
                   "--json", str(out)])
    assert run_score(args) == 0
    text = capsys.readouterr().out
    assert "storagetank" in text and "mAP" in text and ">=" in text
    r = json.loads(out.read_text())
    assert r["interp"] == "voc" and r["per_class"]["airplane"] == 1.0


def test_run_score_end_to_end_on_real_samples(tmp_path, dior_samples, capsys):
    """The lead's DIOR reader on the five shipped samples: ground truth as detections scores 1.0."""
    from surgery_core.data.datasets import load_dior

    ds = load_dior(dior_samples, "all")
    gt = ds.ground_truth()
    lines = ["image_id,class,xmin,ymin,xmax,ymax,score"]
    for j in range(len(gt)):
        x1, y1, x2, y2 = gt.xyxy[j]
        lines.append(f"{ds.images[gt.image[j]].image_id},{ds.classes[gt.class_id[j]]},"
                     f"{x1:g},{y1:g},{x2:g},{y2:g},{1 - j / 100:g}")
    p = write(tmp_path, "gt.csv", "\n".join(lines) + "\n")
    for interp in ("voc07", "voc", "coco"):
        args = _parse(["--dior", str(dior_samples), "--split", "all", "--detections", str(p),
                       "--interp", interp, "--json", str(tmp_path / f"{interp}.json")])
        assert run_score(args) == 0
        r = json.loads((tmp_path / f"{interp}.json").read_text())
        assert r["mAP"] == pytest.approx(1.0) and r["n_classes_with_gt"] == 6
        assert sum(r["n_gt"].values()) == len(gt) == sum(r["n_det"].values())
    assert "vehicle" in capsys.readouterr().out
    with pytest.raises(InputError, match="line 2: unknown image id '11726'"):
        read_detections(write(tmp_path, "x.csv", "image_id,class,xmin,ymin,xmax,ymax,score\n"
                                                 "11726,airplane,0,0,1,1,1\n"), ds)
