"""Procedural demo scenes: boxes that sit on the drawn objects, honest captions, DIOR's layout, determinism."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from surgery_core.data.classes import DIOR_CLASSES, prompt_name
from surgery_core.demo import scenes
from surgery_core.demo.scenes import (
    CLASS_WORDS,
    DEMO_CLASSES,
    PLAIN_BACKGROUND,
    generate_dataset,
    is_complete,
    render_scene,
)
from surgery_core.demo.scenes import dataset as scene_dataset
from surgery_core.demo.scenes.geometry import _draw
from surgery_core.demo.scenes.scene import _layout

N_SCENES = 200
ANN = Path("Annotations") / "Horizontal Bounding Boxes"


@pytest.fixture(scope="module")
def many() -> list[scenes.Scene]:
    return [render_scene(np.random.default_rng([11, i])) for i in range(N_SCENES)]


def _foreground(image: np.ndarray) -> np.ndarray:
    return np.any(image != np.array(PLAIN_BACKGROUND, np.uint8), axis=2)


def _box_errors(image: np.ndarray, objects) -> list[str]:
    """Checks boxes against a plain render: every drawn pixel lies in some box, and each box touches drawn
    pixels on all four of its edges (first/last row and column) - a box off by a pixel fails one or the other."""
    fg = _foreground(image)
    union = np.zeros_like(fg)
    errors = []
    for name, (x0, y0, x1, y1) in objects:
        union[y0:y1, x0:x1] = True
        edges = {"top": fg[y0, x0:x1], "bottom": fg[y1 - 1, x0:x1], "left": fg[y0:y1, x0], "right": fg[y0:y1, x1 - 1]}
        errors += [f"{name} {(x0, y0, x1, y1)}: nothing drawn on its {k} edge" for k, v in edges.items() if not v.any()]
    stray = int((fg & ~union).sum())
    if stray:
        errors.append(f"{stray} drawn pixels outside every box")
    return errors


def test_classes_are_dior_spellings_and_prompt_words():
    assert len(DEMO_CLASSES) >= 8 and len(set(DEMO_CLASSES)) == len(DEMO_CLASSES)
    for c in ("airplane", "storagetank", "tenniscourt", "ship", "vehicle", "groundtrackfield", "windmill", "chimney"):
        assert c in DEMO_CLASSES
    for c in DEMO_CLASSES:
        assert c in DIOR_CLASSES
        assert CLASS_WORDS[c] == prompt_name(c)


def test_scenes_are_well_formed(many):
    for s in many:
        assert s.image.dtype == np.uint8 and s.image.shape == (224, 224, 3)
        assert s.objects, "every scene has at least one object"
        assert isinstance(s.caption, str) and len(s.caption) > 10
        for name, box in s.objects:
            assert name in DEMO_CLASSES
            assert all(type(v) is int for v in box)
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224


def test_every_class_appears(many):
    images_with = Counter(c for s in many for c in {n for n, _ in s.objects})
    for c in DEMO_CLASSES:
        assert images_with[c] >= 15, (c, images_with)
    objects = Counter(n for s in many for n, _ in s.objects)
    assert objects["vehicle"] > images_with["vehicle"] * 1.5, "vehicles come in groups"
    assert objects["storagetank"] > images_with["storagetank"] * 1.5, "storage tanks come in groups"


def test_captions_name_exactly_the_classes_shown(many):
    for s in many:
        text = s.caption.lower()
        counts = Counter(n for n, _ in s.objects)
        for c in DEMO_CLASSES:
            word = CLASS_WORDS[c]
            plural = "chimneys" if c == "chimney" else word + "s"
            if c not in counts:
                assert word not in text, (c, s.caption)
            elif counts[c] == 1:
                assert re.search(rf"\b{word}\b", text) and plural not in text, (c, counts[c], s.caption)
            else:
                assert plural in text, (c, counts[c], s.caption)
    assert len({s.caption for s in many}) > 0.9 * len(many), "captions vary"


def test_relative_sizes_are_dior_like(many):
    side = {c: [] for c in DEMO_CLASSES}
    for s in many:
        for n, (x0, y0, x1, y1) in s.objects:
            if 0 < x0 and 0 < y0 and x1 < 224 and y1 < 224:     # not cut by the border
                side[n].append(max(x1 - x0, y1 - y0))
    med = {c: float(np.median(v)) for c, v in side.items()}
    assert 5 <= med["vehicle"] <= 13, med
    assert 65 <= med["groundtrackfield"] <= 135, med
    for c in DEMO_CLASSES:
        if c not in ("vehicle", "groundtrackfield"):
            assert med["vehicle"] < med[c] < med["groundtrackfield"], (c, med)


def test_objects_do_not_overlap_much(many):
    for s in many:
        boxes = np.array([b for _, b in s.objects], float)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                inter = max(iw, 0) * max(ih, 0)
                assert inter / (area[i] + area[j] - inter) < 0.5, (s.objects[i], s.objects[j])


def test_plain_render_has_the_same_layout_and_caption():
    for i in range(25):
        a = render_scene(np.random.default_rng([5, i]))
        b = render_scene(np.random.default_rng([5, i]), plain=True)
        assert a.objects == b.objects and a.caption == b.caption
        assert not np.array_equal(a.image, b.image)


@pytest.mark.parametrize("size", [224, 96, 320])
def test_boxes_are_tight_around_the_drawn_objects(size):
    n = 150 if size == 224 else 40
    for i in range(n):
        s = render_scene(np.random.default_rng([size, i]), size, plain=True)
        assert _box_errors(s.image, s.objects) == [], (size, i)


def test_box_check_catches_boxes_off_by_one_pixel():
    caught = total = 0
    for i in range(40):
        s = render_scene(np.random.default_rng([9, i]), plain=True)
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            moved = [(n, (x0 + dx, y0 + dy, x1 + dx, y1 + dy)) for n, (x0, y0, x1, y1) in s.objects]
            if all(0 <= b[0] and 0 <= b[1] and b[2] <= 224 and b[3] <= 224 for _, b in moved):
                total += 1
                caught += bool(_box_errors(s.image, moved))
    assert total > 100 and caught == total


def test_boxes_stand_out_from_the_background_in_real_renders(many):
    """Objects differ from their surroundings: inside a box the image departs more from the median of a ring
    just outside it than the ring itself does (shadows and neighbours blur this, so only on average)."""
    ratios = []
    for s in many[:80]:
        img = s.image.astype(np.float32)
        for _, (x0, y0, x1, y1) in s.objects:
            m = max(3, (x1 - x0 + y1 - y0) // 8)
            X0, Y0, X1, Y1 = max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, 224), min(y1 + m, 224)
            ring = np.ones((Y1 - Y0, X1 - X0), bool)
            ring[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = False
            if ring.sum() < 20:
                continue
            patch = img[Y0:Y1, X0:X1]
            ref = np.median(patch[ring], axis=0)
            inside = np.abs(img[y0:y1, x0:x1] - ref).mean()
            outside = np.abs(patch[ring] - ref).mean()
            ratios.append(inside / max(outside, 1.0))
    assert np.median(ratios) > 1.5, np.median(ratios)


def test_ships_on_water_and_everything_else_on_land():
    for i in range(120):
        rng = np.random.default_rng([21, i])
        laid = _layout(rng, 224)
        if laid is None:
            continue
        b, _ = laid
        fg = _foreground(b.render(plain=True))
        for name, (x0, y0, x1, y1) in b.objects:
            ground = b.ground[y0:y1, x0:x1][fg[y0:y1, x0:x1]]
            if name == "ship":
                assert (ground == b.WATER).all(), (i, name)
            else:
                assert not (ground == b.WATER).any(), (i, name)


def test_objects_cut_by_the_border_keep_half_their_area():
    """Redraw each object's body on a canvas with a wide margin around the image and compare its area inside
    the image with its whole area."""
    pad, cut = 200, 0
    for i in range(150):
        laid = _layout(np.random.default_rng([31, i]), 224)
        if laid is None:
            continue
        b, _ = laid
        bodies = [cmds for is_object, cmds, _ in b.bodies if is_object]
        assert len(bodies) == len(b.objects)
        for (name, box), cmds in zip(b.objects, bodies):
            canvas = np.zeros((224 + 2 * pad, 224 + 2 * pad), np.uint8)
            for cmd in cmds:
                _draw(canvas, cmd, np.array([-pad, -pad], np.int32) * 16, 255)
            total = int(np.count_nonzero(canvas))
            inside = int(np.count_nonzero(canvas[pad:pad + 224, pad:pad + 224]))
            assert 2 * inside >= total, (i, name, box, inside, total)
            cut += inside < total
    assert cut > 5, "some objects do touch the border"


def test_other_sizes_and_too_small_a_size():
    with pytest.raises(ValueError):
        render_scene(np.random.default_rng(0), 32)
    big = render_scene(np.random.default_rng([1, 2]), 448)
    assert big.image.shape == (448, 448, 3)


# ---------------------------------------------------------------------------------------------------------
# dataset layout


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "DIOR-demo"
    return out, generate_dataset(out, seed=5, count=10)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_has_dior_release_layout(dataset):
    out, summary = dataset
    ids = {s: (out / "ImageSets" / "Main" / f"{s}.txt").read_text().split("\n") for s in ("train", "val", "test")}
    for s, lst in ids.items():
        assert lst[-1] == "", "one id per line, newline-terminated"
        ids[s] = lst[:-1]
        assert all(re.fullmatch(r"\d{5}", x) for x in ids[s])
    assert ids == {"train": [f"{i:05d}" for i in range(1, 7)], "val": ["00007", "00008"], "test": ["00009", "00010"]}
    assert summary["splits"] == {"train": 6, "val": 2, "test": 2}
    trainval = sorted(p.stem for p in (out / "JPEGImages-trainval").iterdir())
    test = sorted(p.stem for p in (out / "JPEGImages-test").iterdir())
    assert trainval == ids["train"] + ids["val"] and test == ids["test"]
    assert sorted(p.name for p in (out / ANN).iterdir()) == [f"{i:05d}.xml" for i in range(1, 11)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".complete", "Annotations", "ImageSets", "JPEGImages-test", "JPEGImages-trainval", "README.md",
         "captions.jsonl"])
    assert is_complete(out)
    readme = (out / "README.md").read_text()
    assert "synthetic" in readme.lower() and "Seed: 5" in readme and "Count: 10" in readme
    assert "generate_dataset" in readme
    img = cv2.imread(str(out / "JPEGImages-test" / "00010.jpg"))
    assert img.shape == (224, 224, 3)


def test_project_dior_reader_reads_it_without_complaint(dataset):
    from surgery_core.data.datasets import load_dior

    out, _ = dataset
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        ds = load_dior(out, split=split, strict=True)
        assert len(ds.images) == n
        assert ds.report.skipped_files == [] and ds.report.skipped_objects == []
        assert ds.report.images_found == n and ds.report.zero_size_boxes == 0 and ds.report.boxes_past_image == 0


def test_annotations_follow_dior_schema_and_match_the_renderer(dataset):
    out, summary = dataset
    captions = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [c["id"] for c in captions] == [f"{i:05d}" for i in range(1, 11)]
    per_class = Counter()
    for i in range(1, 11):
        image_id = f"{i:05d}"
        root = ET.parse(out / ANN / f"{image_id}.xml").getroot()
        assert root.tag == "annotation"
        assert [c.tag for c in root][:5] == ["filename", "source", "size", "segmented", "object"]
        assert {c.tag for c in root} == {"filename", "source", "size", "segmented", "object"}
        assert root.findtext("filename") == f"{image_id}.jpg"
        assert root.find("source/database").text
        assert [root.findtext(f"size/{k}") for k in ("width", "height", "depth")] == ["224", "224", "3"]
        assert root.findtext("segmented") == "0"
        objects = []
        for o in root.findall("object"):
            assert [c.tag for c in o] == ["name", "pose", "bndbox"]
            assert [c.tag for c in o.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
            box = tuple(int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append((o.findtext("name"), box))
        scene = render_scene(np.random.default_rng([5, i]), 224)
        assert objects == scene.objects
        assert captions[i - 1]["caption"] == scene.caption
        per_class.update(n for n, _ in objects)
    total = Counter()
    for split in ("train", "val", "test"):
        total.update(summary["objects"][split])
    assert {c: total[c] for c in DEMO_CLASSES} == {c: per_class[c] for c in DEMO_CLASSES}


def test_generation_is_deterministic_and_scene_i_does_not_depend_on_count(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    generate_dataset(again, seed=5, count=10)
    assert _tree(again) == _tree(out), "same seed and count give byte-identical files"

    other = tmp_path / "other-seed"
    generate_dataset(other, seed=6, count=10)
    a, b = _tree(out), _tree(other)
    assert sum(a[k] != b[k] for k in a if k.endswith(".jpg")) == 10

    fewer = tmp_path / "fewer"
    generate_dataset(fewer, seed=5, count=4)
    a = {Path(k).name: v for k, v in _tree(out).items() if k.endswith((".jpg", ".xml"))}
    b = {Path(k).name: v for k, v in _tree(fewer).items() if k.endswith((".jpg", ".xml"))}
    assert len(b) == 8 and all(a[k] == v for k, v in b.items())


def test_generation_refuses_to_clobber_and_detects_a_crash(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate_dataset(out, seed=1, count=2)
    assert (out / "mine.txt").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    generate_dataset(empty, seed=1, count=2)
    assert is_complete(empty)

    calls = {"n": 0}
    real = scene_dataset.render_scene

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(scene_dataset, "render_scene", failing)
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError):
        generate_dataset(crashed, seed=1, count=5)
    assert not is_complete(crashed) and not crashed.exists()
    monkeypatch.setattr(scene_dataset, "render_scene", real)
    generate_dataset(crashed, seed=1, count=5)
    assert is_complete(crashed)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())

    generate_dataset(out, seed=1, count=2, overwrite=True)
    assert is_complete(out) and not (out / "mine.txt").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "a", seed=1, count=0)
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "b", seed=1, count=3, split_fractions=(1, -1, 0))


def test_training_set_is_the_same_in_any_number_of_workers_and_groups():
    """The training renderer (chunks, worker processes, groups) gives exactly the scenes of render_scene."""
    from surgery_core.demo.train import render_training_set

    images, captions = render_training_set(3, 23, 96, workers=2, chunk=5, group=12)
    serial, serial_captions = render_training_set(3, 23, 96)
    assert images.shape == (23, 3, 96, 96) and images.dtype == np.uint8
    assert np.array_equal(images, serial) and captions == serial_captions
    for i in (0, 11, 12, 22):  # both sides of a group boundary
        scene = render_scene(np.random.default_rng([3, i]), 96)
        assert np.array_equal(images[i], scene.image.transpose(2, 0, 1)) and captions[i] == scene.caption


def test_each_class_is_one_complete_record():
    """One record per class: DIOR names, unique placing ranks, backgrounds the generator can draw, and the
    words and plurals captions use all start from the record's own words."""
    from surgery_core.demo.scenes.backgrounds import _BACKGROUNDS
    from surgery_core.demo.scenes.classes import CLASS_RECORDS, PLACING_ORDER

    assert tuple(r.name for r in CLASS_RECORDS) == DEMO_CLASSES
    assert set(DEMO_CLASSES) <= set(DIOR_CLASSES)
    assert sorted(r.order for r in CLASS_RECORDS) == list(range(len(CLASS_RECORDS)))
    assert [r.order for r in PLACING_ORDER] == list(range(len(CLASS_RECORDS)))
    for r in CLASS_RECORDS:
        assert CLASS_WORDS[r.name] == r.words and r.plural.startswith(r.words), r
        assert r.backgrounds and set(r.backgrounds) <= set(_BACKGROUNDS), r
        assert r.adjectives and all(a.endswith(" ") for a in r.adjectives), r
        assert callable(r.placer), r
    with pytest.raises(AttributeError):
        CLASS_RECORDS[0].words = "jet"
