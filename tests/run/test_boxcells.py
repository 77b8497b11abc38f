"""Issue 17: the detection cap (maxDets per image), the columnar box cells and their lazy cutting.

The cap is checked against a plain loop that sorts each image's boxes and keeps the top N; with the cap off, the
stored-and-read-back cells must give exactly the AP of today's path (``detections_at`` in memory) on a
DIOR-sized case: real DIOR-test annotations, 800 px images, 20 classes, 25x25 grids, both protocols.
"""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.data.datasets import load_dior
from surgery_core.data.detections import Detections
from surgery_core.eval.ap import evaluate
from surgery_core.eval.boxes import BoxParams
from surgery_core.eval.cutting import detections_at
from surgery_core.eval.maxdets import cap_detections, cap_indices
from surgery_core.eval.protocols import Cell
from surgery_core.run.boxcells import COLUMNS, CellStore, RunBoxes, box_key
from surgery_core.run.config import DataConfig, RunConfig
from surgery_core.run.evaluation import box_params_for, describe_boxes, present_pairs
from surgery_core.run.grids import GridSet

PERCENTILES = (60.0, 80.0, 90.0)


def plain_cap(det: Detections, n: int) -> Detections:
    """The reference: per image, sort by descending score (earlier box first on ties), keep the first n, and
    give the kept boxes back in their original order."""
    if n == 0:
        return det
    keep = []
    for img in sorted(set(det.image.tolist())):
        idx = [i for i in range(len(det)) if det.image[i] == img]
        idx.sort(key=lambda i: (-det.score[i], i))
        keep.extend(idx[:n])
    return det[np.array(sorted(keep), dtype=np.int64)]


def assert_same(a: Detections, b: Detections) -> None:
    for name in ("xyxy", "score", "class_id", "image"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def random_dets(rng, n=4000, images=40, classes=20) -> Detections:
    xy = rng.uniform(0, 700, (n, 2))
    wh = rng.uniform(1, 100, (n, 2))
    # few distinct scores: many ties at the cap's edge
    score = rng.integers(0, 30, n) / 29.0
    return Detections(np.hstack([xy, xy + wh]), score, rng.integers(0, classes, n), rng.integers(0, images, n))


@pytest.mark.parametrize("n", [0, 1, 5, 60, 100, 10_000])
def test_cap_equals_a_plain_sort_and_keep_loop(n):
    det = random_dets(np.random.default_rng(n))
    got = cap_detections(det, n)
    assert_same(got, plain_cap(det, n))
    counts = np.bincount(got.image)
    assert counts.max() <= (n or len(det))
    if n == 5:  # the cap binds here: something was dropped, and only from images above the cap
        assert len(got) < len(det)
        before = np.bincount(det.image, minlength=len(counts))
        np.testing.assert_array_equal(counts, np.minimum(before[:len(counts)], 5))


def test_cap_leaves_a_cell_under_the_cap_untouched():
    det = random_dets(np.random.default_rng(1), n=300, images=10)
    assert cap_indices(det.image, det.score, 1000) is None
    assert cap_detections(det, 1000) is det


def dior_case(dior_full, n_images=60):
    """A DIOR-sized case: the first DIOR-test images with real annotations, 25x25 random grids with a bump on
    each GT box (so AP is not trivially 0), class probabilities, GridSet as a run holds it."""
    ds = load_dior(dior_full, "test", limit=n_images)
    rng = np.random.default_rng(17)
    g = rng.normal(0, 0.05, (len(ds.images), len(ds.classes), 25, 25)).astype(np.float32)
    yy, xx = np.mgrid[0:25, 0:25].astype(np.float32) + 0.5
    for i, rec in enumerate(ds.images):
        s = 25 / rec.width
        for (x1, y1, x2, y2), c in zip(rec.xyxy, rec.labels):
            cx, cy = (x1 + x2) / 2 * s, (y1 + y2) / 2 * s
            sx, sy = max((x2 - x1) * s / 2, 0.5), max((y2 - y1) * s / 2, 0.5)
            g[i, c] += 0.3 * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
    probs = rng.dirichlet(np.ones(len(ds.classes)), len(ds.images)).astype(np.float32)
    gs = GridSet(key="test-boxcells", classes=tuple(ds.classes), rows=np.arange(len(ds.images)),
                 grids={"standard": g}, probs=probs, input_size=800)
    return ds, gs


def run_config(dior_full, cap: int) -> RunConfig:
    return RunConfig(data=DataConfig(kind="dior", root=str(dior_full), limit=60), methods=("standard",),
                     boxes=BoxParams(max_dets=cap), sweep_percentiles=PERCENTILES, quality_percentiles=(90.0,))


def todays_path(ds, gs, cfg, proto):
    """Boxes as the run cut them before issue 17: one in-memory sweep, no cap."""
    sizes = np.asarray([(r.width, r.height) for r in ds.images])
    pr, pc = present_pairs(ds, gs.rows)
    pairs = dict(pair_image=pr, pair_class=pc) if proto == "present" else {}
    return detections_at(gs.grids["standard"], sizes, box_params_for(cfg, proto), PERCENTILES,
                            class_probs=gs.probs, image_ids=gs.rows, **pairs)


def test_cap_off_gives_todays_ap_exactly_on_a_dior_sized_case(dior_full, tmp_path):
    ds, gs = dior_case(dior_full)
    cfg = run_config(dior_full, cap=0)
    boxes = RunBoxes(cfg, ds, gs, tmp_path / "cells")
    gt = ds.ground_truth()
    assert boxes.ensure(percentiles=PERCENTILES) == 2 * len(PERCENTILES)
    for proto in ("present", "open"):
        old = todays_path(ds, gs, cfg, proto)
        for p in PERCENTILES:
            new = boxes[Cell.of("standard", proto, p)]
            assert_same(new, old[p])
            for interp in ("voc07", "voc", "coco"):
                a = evaluate(gt, old[p], 20, (0.1, 0.3, 0.5), interp)
                b = evaluate(gt, new, 20, (0.1, 0.3, 0.5), interp)
                np.testing.assert_allclose(b.ap, a.ap, rtol=0, atol=1e-12, err_msg=f"{proto} p{p} {interp}")
                assert abs(a.mAP - b.mAP) <= 1e-12
        if proto == "open":  # the case is big enough for the cap to matter: some image has > 100 boxes
            assert np.bincount(old[60.0].image).max() > 100


def test_capped_cells_equal_the_plain_loop_over_uncapped_boxes(dior_full, tmp_path):
    ds, gs = dior_case(dior_full)
    cfg = run_config(dior_full, cap=100)
    boxes = RunBoxes(cfg, ds, gs, tmp_path / "cells")
    for proto in ("present", "open"):
        old = todays_path(ds, gs, cfg, proto)
        for p in (60.0, 90.0):
            assert_same(boxes[Cell.of("standard", proto, p)], plain_cap(old[p], 100))


def test_cap_in_the_workers_equals_the_cap_afterwards_whatever_the_chunks():
    rng = np.random.default_rng(3)
    grids = rng.normal(0, 1, (7, 5, 12, 12)).astype(np.float32)
    sizes = np.tile([[400, 300]], (7, 1))
    params = BoxParams(box_resolution=64, morph_kernel=1)
    whole = detections_at(grids, sizes, params, (50.0, 80.0))
    for chunk in (1, 3, 40):  # chunks that would split an image are moved to image boundaries
        capped = detections_at(grids, sizes, params, (50.0, 80.0), chunk_pairs=chunk, max_dets=9)
        for p in (50.0, 80.0):
            assert np.bincount(whole[p].image).max() > 9
            assert_same(capped[p], plain_cap(whole[p], 9))


def test_cells_are_cut_lazily_and_read_memory_mapped(dior_full, tmp_path):
    ds, gs = dior_case(dior_full, n_images=12)
    cfg = run_config(dior_full, cap=100)
    root = tmp_path / "cells"
    boxes = RunBoxes(cfg, ds, gs, root)
    assert len(boxes.missing()) == 2 * 3  # both protocols x the run's percentiles (sweep + quality + its own)
    det = boxes[Cell.of("standard", "open", 80.0)]
    cells = sorted(str(p.relative_to(root)) for p in root.glob("*/*/p*"))
    assert cells == ["standard/open/p80"]  # asking for one cell cut that cell only
    assert sorted(p.name for p in (root / "standard/open/p80").iterdir()) == [f"{c}.npy" for c in sorted(COLUMNS)]
    fresh = CellStore(root).read(Cell.of("standard", "open", 80.0))
    assert_same(fresh, det)

    def mapped(a):
        while a is not None:
            if isinstance(a, np.memmap):
                return True
            a = a.base
        return False

    assert mapped(fresh.xyxy) and mapped(fresh.score)
    assert np.load(root / "standard/open/p80/class_id.npy").dtype == np.uint8
    assert np.load(root / "standard/open/p80/xyxy.npy").dtype == np.float64
    # a damaged cell is cut again, never served (damaged by replacing the file: truncating a mapped file in
    # place would fault the mappings above)
    want = det[np.arange(len(det))]  # a copy in memory
    bad = root / "standard/open/p80/score.tmp"
    bad.write_bytes(b"not numpy")
    bad.replace(root / "standard/open/p80/score.npy")
    again = RunBoxes(cfg, ds, gs, root).get(Cell.of("standard", "open", 80.0))
    assert_same(again, want)


def test_cap_is_part_of_the_run_hash_the_box_key_and_the_caption(dior_full):
    a, b = run_config(dior_full, 100), run_config(dior_full, 0)
    assert a.run_hash != b.run_hash
    ds, gs = dior_case(dior_full, n_images=2)
    assert box_key(a, gs) != box_key(b, gs)
    # what only the reports differ in does not change the boxes
    assert box_key(a, gs) == box_key(a.model_copy(update={"iou_thresholds": (0.5,), "protocols": ("open",)}), gs)
    assert "maxDets 100: at most 100 boxes per image" in describe_boxes(a.boxes)
    assert "no cap on boxes per image" in describe_boxes(b.boxes)
    with pytest.raises(ValueError, match="max_dets"):
        BoxParams(max_dets=-1)
