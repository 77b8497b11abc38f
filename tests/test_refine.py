"""PAMR (refine: pamr) against a plain per-pixel loop, and as a run option recorded in the configuration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from surgery_core.boxes import BoxParams
from surgery_core.config import RunConfig
from surgery_core.refine import PAMR_DILATIONS, PAMR_ITERATIONS, pamr, refine_grid


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
