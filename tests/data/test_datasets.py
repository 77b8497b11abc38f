"""The DIOR reader on the full real annotation set, the five real samples, and hostile or broken files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from surgery_core.data.classes import DIOR_CLASSES
from surgery_core.data.datasets import find_dior_layout, load_coco, load_dior
from surgery_core.errors import AnnotationError, InputError

# Facts of the real set, counted over the whole DIOR release (all splits: 23,463 annotation files).
PER_CLASS = {"airplane": 10100, "airport": 1328, "baseballfield": 5818, "basketballcourt": 3223, "bridge": 3956,
             "chimney": 1680, "dam": 1050, "Expressway-Service-area": 2165, "Expressway-toll-station": 1298,
             "golffield": 1086, "groundtrackfield": 3047, "harbor": 5469, "overpass": 3112, "ship": 62537,
             "stadium": 1267, "storagetank": 26403, "tenniscourt": 12241, "trainstation": 1010,
             "vehicle": 40365, "windmill": 5363}


def test_full_annotation_set(dior_full):
    ds = load_dior(dior_full, "all")
    s = ds.summary()
    assert s["images"] == 23463 and s["objects"] == 192518
    assert s["per_class"] == PER_CLASS
    q = s["quirks"]
    assert q["skipped_files"] == [] and q["skipped_objects"] == []
    assert q["zero_size_boxes"] > 0 and q["boxes_past_image_clipped"] == 1 and q["depth_not_3"] == 3
    assert q["boxes_touching_border"] > 100 and 0 < q["with_xml_declaration"] < 23463
    gt = ds.ground_truth()
    assert len(gt) == 192518 and gt.xyxy.max() <= 800 and gt.xyxy.min() >= 0
    assert min(r.num_objects for r in ds.images) >= 1


def test_official_splits(dior_full):
    sizes = {split: len(load_dior(dior_full, split).images) for split in ("train", "val", "test")}
    assert sizes == {"train": 5862, "val": 5863, "test": 11738}
    assert load_dior(dior_full, "test").summary()["objects"] == 124445


def test_dataset_command_json_is_fast(dior_full):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "surgery_core.cli", "dataset", "--dior", str(dior_full),
                          "--split", "test", "--json"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    doc = json.loads(out.stdout)
    assert doc["images"] == 11738 and doc["objects"] == 124445
    assert sum(doc["per_class"].values()) == 124445 and set(doc["per_class"]) == set(DIOR_CLASSES)
    assert "zero_size_boxes" in doc["quirks"]
    assert elapsed < 60, f"took {elapsed:.1f} s: seconds, not minutes"


def test_five_real_samples(dior_samples):
    ds = load_dior(dior_samples, "all")
    assert [r.image_id for r in ds.images] == ["00001", "06486", "06796", "09100", "09938"]
    assert all(r.path is not None and r.path.is_file() for r in ds.images)
    counts = {c: n for c, n in ds.per_class_counts().items() if n}
    assert set(counts) == {"golffield", "storagetank", "vehicle", "basketballcourt", "tenniscourt", "bridge"}
    first = ds.images[0]
    assert first.width == 800 and ds.classes[first.labels[0]] == "golffield"
    np.testing.assert_array_equal(first.xyxy[0], [133, 237, 684, 672])


def test_doubled_folders_and_dior_level(tmp_path, dior_samples):
    root = tmp_path / "unzipped" / "DIOR"
    (root / "JPEGImages-trainval").mkdir(parents=True)
    shutil.copytree(dior_samples / "JPEGImages-trainval", root / "JPEGImages-trainval" / "JPEGImages-trainval")
    shutil.copytree(dior_samples / "Annotations", root / "Annotations" / "Annotations")
    shutil.copytree(dior_samples / "ImageSets", root / "ImageSets")
    layout = find_dior_layout(tmp_path / "unzipped")
    assert layout.annotations.name == "Horizontal Bounding Boxes"
    ds = load_dior(tmp_path / "unzipped", "val")
    assert len(ds.images) == 4 and all(r.path is not None for r in ds.images)


def _make_root(tmp_path, files: dict[str, bytes], split_ids):
    ann = tmp_path / "Annotations" / "Horizontal Bounding Boxes"
    ann.mkdir(parents=True)
    for name, data in files.items():
        (ann / name).write_bytes(data)
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("\n".join(split_ids) + "\n")
    return tmp_path


GOOD = (b"<annotation><filename>1.jpg</filename><size><width>100</width><height>80</height><depth>3</depth>"
        b"</size><object><name>{name}</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax>"
        b"</bndbox></object></annotation>")

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<annotation><filename>&lol9;</filename></annotation>"""

EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<annotation><filename>&x;</filename></annotation>"""


def test_hostile_xml_refused_quickly_and_run_goes_on(tmp_path):
    root = _make_root(tmp_path, {"00001.xml": BILLION_LAUGHS, "00002.xml": EXTERNAL,
                                 "00003.xml": GOOD.replace(b"{name}", b"ship")}, ["00001", "00002", "00003"])
    t0 = time.perf_counter()
    ds = load_dior(root, "test")
    assert time.perf_counter() - t0 < 2
    assert [r.image_id for r in ds.images] == ["00003"]
    reasons = dict(ds.report.skipped_files)
    assert len(reasons) == 2 and all("hostile XML" in r for r in reasons.values())
    assert any(f.endswith("00001.xml") for f in reasons)
    with pytest.raises(AnnotationError, match="00001.xml: refused hostile XML"):
        load_dior(root, "test", strict=True)


def test_aliases_unknown_classes_and_broken_files(tmp_path):
    root = _make_root(tmp_path, {
        "00001.xml": GOOD.replace(b"{name}", b"Storage Tank"),
        "00002.xml": GOOD.replace(b"{name}", b"spaceship"),
        "00003.xml": b"this is not xml",
        "00004.xml": GOOD.replace(b"{name}", b"ship").replace(b"<xmax>30</xmax>", b""),
        "00005.xml": GOOD.replace(b"{name}", b"ship").replace(b"<xmin>1</xmin>", b"<xmin>90</xmin>"),
    }, ["00001", "00002", "00003", "00004", "00005", "00006"])
    ds = load_dior(root, "test")
    assert ds.classes[ds.images[0].labels[0]] == "storagetank"
    assert ds.report.aliased_class_names == {"Storage Tank -> storagetank": 1}
    skipped_objects = " | ".join(f"{f}: {r}" for f, r in ds.report.skipped_objects)
    assert "00002.xml: object 0: class 'spaceship' is not in the class list" in skipped_objects
    assert "00004.xml: object 0: missing <xmax>" in skipped_objects
    assert "00005.xml: object 0: inverted box" in skipped_objects
    files = dict(ds.report.skipped_files)
    assert any(f.endswith("00003.xml") and "not well-formed" in r for f, r in files.items())
    assert any(f.endswith("00006.xml") and "missing" in r for f, r in files.items())
    assert len(ds.images) == 4  # the files whose objects were skipped stay, with no boxes


def test_missing_root_and_split(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        load_dior(tmp_path / "nope")
    root = _make_root(tmp_path, {"00001.xml": GOOD.replace(b"{name}", b"ship")}, ["00001"])
    with pytest.raises(InputError, match="train.txt not found"):
        load_dior(root, "train")


def test_coco_reader(tmp_path):
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}],
           "categories": [{"id": 3, "name": "ship"}, {"id": 1, "name": "airplane"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 5, 20, 10], "iscrowd": 0},
                           {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1}]}
    f = tmp_path / "instances.json"
    f.write_text(json.dumps(doc))
    ds = load_coco(f)
    assert ds.classes == ("airplane", "ship")
    np.testing.assert_array_equal(ds.images[0].xyxy, [[10, 5, 30, 15]])
    assert ds.classes[ds.images[0].labels[0]] == "ship"
    assert "crowd" in ds.report.skipped_objects[0][1]
