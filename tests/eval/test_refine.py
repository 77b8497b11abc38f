"""PAMR (refine: pamr) against a plain per-pixel loop, and as a run option recorded in the configuration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from surgery_core.eval.boxes import BoxParams
from surgery_core.model.refine import PAMR_DILATIONS, PAMR_ITERATIONS, pamr, refine_grid
from surgery_core.run.config import RunConfig


def _offsets(d, centre):
    return [(dy, dx) for dy in (-d, 0, d) for dx in (-d, 0, d) if centre or (dy, dx) != (0, 0)]


def _plain_pamr(image, maps, iterations, dilations):
    """The published definition pixel by pixel: replicate borders = clamped indices."""
    c, h, w = image.shape
    k = maps.shape[0]
    at = lambda a, y, x: a[..., min(max(y, 0), h - 1), min(max(x, 0), w - 1)]  # noqa: E731
    nbr = [o for d in dilations for o in _offsets(d, False)]
    win = [o for d in dilations for o in _offsets(d, True)]
    aff = np.zeros((len(nbr), h, w))
    for y in range(h):
        for x in range(w):
            logits = np.zeros(len(nbr))
            for ch in range(c):
                vals = [at(image[ch], y + dy, x + dx) for dy, dx in win]
                mean = sum(vals) / len(vals)
                std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
                for p, (dy, dx) in enumerate(nbr):
                    logits[p] += -abs(image[ch, y, x] - at(image[ch], y + dy, x + dx)) / (1e-8 + 0.1 * std) / c
            e = np.exp(logits - logits.max())
            aff[:, y, x] = e / e.sum()
    m = maps.astype(np.float64).copy()
    for _ in range(iterations):
        new = np.zeros_like(m)
        for y in range(h):
            for x in range(w):
                for p, (dy, dx) in enumerate(nbr):
                    new[:, y, x] += aff[p, y, x] * at(m, y + dy, x + dx)
        m = new
    return m


@pytest.mark.parametrize("dilations,iterations", [((1, 2), 3), (PAMR_DILATIONS, PAMR_ITERATIONS)])
def test_pamr_equals_plain_loop(dilations, iterations):
    rng = np.random.default_rng(0)
    image = rng.random((3, 18, 21))
    image[:, :, 10:] += 2.0  # an edge the refinement must respect
    maps = rng.standard_normal((2, 18, 21))
    ours = pamr(torch.from_numpy(image)[None], torch.from_numpy(maps)[None], iterations, dilations)[0].numpy()
    ref = _plain_pamr(image, maps, iterations, dilations)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(ours, maps, atol=1e-2)  # it did something


def test_pamr_is_affine_invariant_in_the_image_and_keeps_edges():
    rng = np.random.default_rng(1)
    img = np.zeros((3, 32, 32))
    img[:, :, 16:] = 1.0
    img += rng.random(img.shape) * 0.01
    m = np.zeros((1, 32, 32))
    m[0, :, 12:20] = 1.0  # a map that leaks 4 px over the edge at column 16
    a = pamr(torch.from_numpy(img)[None], torch.from_numpy(m)[None])[0, 0].numpy()
    b = pamr(torch.from_numpy(img * 5 - 3)[None], torch.from_numpy(m)[None])[0, 0].numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert a.max() <= 1 + 1e-6 and a.min() >= -1e-6  # convex combinations


def test_refine_grid_shape_and_units():
    grid = np.random.default_rng(2).standard_normal((3, 7, 7)).astype(np.float32)
    image = (np.random.default_rng(3).random((224, 224, 3)) * 255).astype(np.uint8)
    out = refine_grid(grid, image, 224)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    assert grid.min() - 1e-5 <= out.min() and out.max() <= grid.max() + 1e-5


def test_refine_is_in_the_run_hash_and_default_hash_unchanged():
    default = RunConfig()
    assert default.boxes.refine == "none"
    assert "refine" not in default.canonical_json()  # configurations stored before the field keep their hash
    pamr_cfg = RunConfig(boxes=BoxParams(refine="pamr"))
    assert pamr_cfg.run_hash != default.run_hash and '"refine":"pamr"' in pamr_cfg.canonical_json()
    with pytest.raises(ValueError):
        BoxParams(refine="crf")


def test_a_run_with_pamr_cuts_boxes_from_refined_maps(tmp_path, demo_checkpoint):
    from surgery_core.data.images import squash
    from surgery_core.run.config import DataConfig, ModelConfig
    from surgery_core.run.evaluation import describe_boxes
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    base = RunConfig(data=DataConfig(limit=4), model=ModelConfig(checkpoint=str(demo_checkpoint)),
                     methods=("vv_mixed", "naclip"), figure_samples=0, sweep_percentiles=(90.0,),
                     quality_percentiles=(90.0,), protocols=("present",))
    store = RunStore(tmp_path / "store")
    plain = Run.open(base, store)
    refined = Run.open(base.model_copy(update={"boxes": BoxParams(refine="pamr")}), store)
    assert refined.grids.computed == 0  # the grids are shared: refinement is a box option
    assert refined.run_dir != plain.run_dir and "PAMR" in describe_boxes(refined.cfg.boxes)
    i = int(plain.grids.rows[0])
    c = int(plain.dataset.images[i].labels[0])
    for m in base.methods:
        a = plain.detections(m, "present", 90.0)
        b = refined.detections(m, "present", 90.0)
        assert len(b.score) and not (len(a.score) == len(b.score) and np.allclose(a.xyxy, b.xyxy))
        # The live path (one image) agrees with the cached boxes of the whole run.
        live = refined.boxes_for(m, i, c, 90.0)
        live_xyxy = live.xyxy
        sel = (b.image == i) & (b.class_id == c)
        np.testing.assert_allclose(live_xyxy, b.xyxy[sel])
        # ...and both are the boxes of the refined map, cut as any grid.
        from surgery_core.eval.boxes import boxes_from_grid

        size = refined.grids.input_size
        grid = refine_grid(refined.grids.grids[m][refined.row_of(i)], squash(refined.image(i), size), size)
        rec = refined.dataset.images[i]
        xyxy, _ = boxes_from_grid(grid[c], rec.width, rec.height, refined.cfg.boxes)
        np.testing.assert_allclose(xyxy, live_xyxy)
