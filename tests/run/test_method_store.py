"""The run store keys each method's grids by name and definition version; the seed's four stay bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import surgery_core.model.methods as M
from surgery_core.model.forward import embed, tower_forward
from surgery_core.model.heatmaps import compute_heatmaps
from surgery_core.model.loading import load_model
from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
from surgery_core.run.engine import compute_grids, load_dataset, resolve_model
from surgery_core.run.store import RunStore


@pytest.fixture()
def small_cfg(demo_checkpoint):
    return RunConfig(data=DataConfig(limit=6), model=ModelConfig(checkpoint=str(demo_checkpoint)),
                     methods=M.SEED_METHODS, figure_samples=0)


def test_a_new_method_is_computed_alone_and_never_breaks_older_entries(tmp_path, small_cfg, monkeypatch):
    store = RunStore(tmp_path / "store")
    ds = load_dataset(small_cfg)
    loaded = resolve_model(small_cfg, "cpu")
    seed = compute_grids(small_cfg, ds, loaded, store)
    assert seed.computed == 6 and set(seed.grids) == set(M.SEED_METHODS)
    # A method registered after the entries were written: computed (alone) and added to the same entries.
    monkeypatch.setitem(M.METHODS, "clearclip_copy", M.Method("clearclip_copy", "clearclip", "own", M.score_cosine,
                                                              "test copy", M.METHODS["clearclip"].source))
    cfg2 = small_cfg.model_copy(update={"methods": M.SEED_METHODS + ("clearclip_copy",)})
    calls = []
    real = compute_heatmaps

    def spy(loaded_, images, classes, methods, **kw):
        calls.append(tuple(methods))
        return real(loaded_, images, classes, methods, **kw)

    monkeypatch.setattr("surgery_core.run.engine.compute_heatmaps", spy)
    grown = compute_grids(cfg2, ds, loaded, store)
    assert calls == [("clearclip_copy",)] and grown.computed == 6
    for m in M.SEED_METHODS:
        np.testing.assert_array_equal(grown.grids[m], seed.grids[m])
    # Redefining a method (new version) never serves the grids of the old definition.
    monkeypatch.setitem(M.METHODS, "clearclip_copy", M.Method("clearclip_copy", "naclip", "own", M.score_cosine,
                                                              "test copy v2", M.METHODS["naclip"].source, 2))
    calls.clear()
    redone = compute_grids(cfg2, ds, loaded, store)
    assert calls == [("clearclip_copy",)]
    assert not np.allclose(redone.grids["clearclip_copy"], grown.grids["clearclip_copy"])
    # The seed's entries are still whole, and a run of the four alone reads them without computing.
    calls.clear()
    again = compute_grids(small_cfg, ds, loaded, store)
    assert calls == [] and again.computed == 0
    for m in M.SEED_METHODS:
        np.testing.assert_array_equal(again.grids[m], seed.grids[m])


def _seed_dual_path(visual, images, depth):
    """The seed's dual-path forward as it was before the registry (one out_proj call on [qk; vv])."""
    x, _ = embed(visual, images)
    blocks = visual.transformer.resblocks
    split = len(blocks) - min(depth, len(blocks))
    for blk in blocks[:split]:
        x = blk(x)
    x_ori = x_new = x
    for blk in blocks[split:]:
        a = blk.attn
        q, k, v = F.linear(blk.ln_1(x_ori), a.in_proj_weight, a.in_proj_bias).chunk(3, dim=-1)
        b, n, d = q.shape
        q, k, v = (t.view(b, n, a.num_heads, d // a.num_heads).transpose(1, 2) for t in (q, k, v))
        both = torch.cat([F.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(v, v, v)], dim=2)
        both = F.linear(both.transpose(1, 2).reshape(b, 2 * n, -1), a.out_proj.weight, a.out_proj.bias)
        x_new = x_new + blk.ls_1(both[:, n:])
        x_ori = x_ori + blk.ls_1(both[:, :n])
        x_ori = x_ori + blk.ls_2(blk.mlp(blk.ln_2(x_ori)))
    return visual.ln_post(x_ori) @ visual.proj, visual.ln_post(x_new) @ visual.proj


def test_seed_four_are_bit_for_bit_the_seed_whatever_else_is_computed():
    torch.manual_seed(0)
    loaded = load_model("ViT-B-32", random_weights=True)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ori, vv = _seed_dual_path(loaded.model.visual, images, 6)
        alone = tower_forward(loaded.model.visual, images, ("vv",), 6)
        every = tower_forward(loaded.model.visual, images, tuple(M.PATHS), 6)
    assert torch.equal(alone.tokens["ori"], ori) and torch.equal(alone.tokens["vv"], vv)
    assert torch.equal(every.tokens["ori"], ori) and torch.equal(every.tokens["vv"], vv)
    four = compute_heatmaps(loaded, images, ["ship", "harbor"], M.SEED_METHODS, prompt_set="single")
    ten = compute_heatmaps(loaded, images, ["ship", "harbor"], M.DEFAULT_METHODS, prompt_set="single")
    for m in M.SEED_METHODS:
        np.testing.assert_array_equal(four.grids[m], ten.grids[m])
    np.testing.assert_array_equal(four.probs, ten.probs)
