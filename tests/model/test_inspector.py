"""The attention inspector's rows: each sums to one and is the attention the method's forward pass used."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tests.model.test_methods import DEPTH, _model

from surgery_core.model.forward import tower_forward
from surgery_core.model.methods import METHODS, PATHS, get_method, paths_for
from surgery_core.model.rows import AttentionRows, cell_rows


@pytest.fixture(scope="module")
def b32():
    return _model("ViT-B-32")


def _spy_attention(monkeypatch):
    """Record, per path and block call, the values ``v`` and the output ``A @ v`` each variant returned."""
    seen: dict[str, list] = {}
    for p in list(PATHS.values()):
        if p.blocks == "tail":
            continue

        def spy(q, k, v, ctx, _f=p.attention, _n=p.name):
            out = _f(q, k, v, ctx)
            seen.setdefault(_n, []).append((q, k, v, out))
            return out
        monkeypatch.setitem(PATHS, p.name, dataclasses.replace(p, attention=spy))
    return seen


@pytest.mark.parametrize("size", [224, 448])
def test_rows_sum_to_one_and_are_the_attention_the_forward_used(b32, monkeypatch, size):
    seen = _spy_attention(monkeypatch)
    visual = b32.model.visual
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(31))
    g = size // 32
    index = 1 + (g // 2) * g + 1  # a patch inside the grid
    paths = tuple(p for p in PATHS if PATHS[p].blocks != "tail")
    req = AttentionRows(index)
    with torch.no_grad():
        plain = tower_forward(visual, images, paths, DEPTH)
        asked = tower_forward(visual, images, paths, DEPTH, rows=req)
    for name in plain.tokens:  # asking for rows changes nothing the pass computes
        torch.testing.assert_close(asked.tokens[name], plain.tokens[name], rtol=0, atol=0)
    total = len(visual.transformer.resblocks)
    assert sorted(req.vanilla) == list(range(total))
    for b, row in req.vanilla.items():
        torch.testing.assert_close(row.sum(-1), torch.ones(2, 12), atol=1e-5, rtol=0)
    for name in paths:
        spec = PATHS[name]
        blocks = sorted(req.paths[name])
        assert blocks == list(range(total - spec.n_blocks(DEPTH, total), total))
        calls = seen[name][len(seen[name]) // 2:]  # the second pass's calls (the one with rows), block order
        mass = spec.row_mass
        for b, (q, k, v, out) in zip(blocks, calls):
            row = req.paths[name][b]
            torch.testing.assert_close(row.sum(-1), torch.ones_like(row.sum(-1)), atol=1e-5, rtol=0)
            # the row, times what was divided out, mixes the values into exactly the forward's output token
            torch.testing.assert_close((mass * row[:, :, None, :] @ v.float())[:, :, 0], out[:, :, index].float(),
                                       atol=1e-4, rtol=1e-4)
            # and the vanilla row of the same block is q-k attention of the same q, k
            s = q.shape[-1] ** -0.5
            van = ((q[:, :, index:index + 1] @ k.transpose(-1, -2))[:, :, 0] * s).softmax(-1)
            torch.testing.assert_close(req.vanilla[b], van, atol=1e-6, rtol=1e-5)


def test_rows_are_kept_only_when_asked_for(b32):
    """Without a request the pass computes no row (an N x N map per head and block would be a real cost)."""
    import surgery_core.model.forward as Fw

    calls = []
    real = Fw.row_vanilla
    Fw.row_vanilla = lambda *a: calls.append(1) or real(*a)
    try:
        with torch.no_grad():
            tower_forward(b32.model.visual, torch.randn(1, 3, 224, 224), ("sclip", "gem"), DEPTH)
    finally:
        Fw.row_vanilla = real
    assert calls == []


def test_cell_rows_per_method_and_rule(b32):
    visual = b32.model.visual
    crop = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(32))
    every = tuple(METHODS)
    got = cell_rows(visual, crop, every, (5, 9), DEPTH)
    assert got.grid == (14, 14) and got.passes == 4  # one pass per official positional-embedding rule at 448 px
    for name in every:
        m = get_method(name)
        changed = set(paths_for([name])) - {"scclip"}
        assert bool(got.methods[name]) == bool(changed), name  # standard, vv_qk, scclip: no per-block rows
        for b, (mine, van) in got.methods[name].items():
            assert mine.shape == van.shape == (14, 14)
            assert mine.sum() + got.cls_share[(name, b)] == pytest.approx(1.0, abs=1e-5)
            assert van.sum() + got.cls_share[("vanilla", name, b)] == pytest.approx(1.0, abs=1e-5)
        if m.tokens == "maskclip":  # identity attention: all of the row on the patch itself
            mine = next(iter(got.methods[name].values()))[0]
            assert mine[5, 9] == pytest.approx(1.0) and np.count_nonzero(mine) == 1
    assert sorted(got.vanilla) == list(range(12))
    with pytest.raises(ValueError, match="outside the 14x14 grid"):
        cell_rows(visual, crop, every, (14, 0), DEPTH)
