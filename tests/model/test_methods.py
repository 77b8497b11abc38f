"""The six training-free methods added to the seed's four, each checked against an independent per-head loop.

The reference below is written from the official code (repositories and commits in docs/DESIGN.md
section 3), with explicit weight slices and matrix products per head: no SDPA, no fused projections, no
library attention helper. The models are open_clip ViT-B/32 and ViT-B/16 with random weights, and random
(non-zero) biases, so that an ``out_proj`` bias added twice, or a residual or FFN kept where it should be
dropped, shows up.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from surgery_core.model.attention import score_cosine
from surgery_core.model.encoder import Resolution
from surgery_core.model.forward import embed, tower_forward
from surgery_core.model.heatmaps import compute_heatmaps, similarity_grids
from surgery_core.model.loading import load_model
from surgery_core.model.methods import (
    DEFAULT_METHODS,
    METHODS,
    PATHS,
    SEED_METHODS,
    Method,
    Source,
    get_method,
    paths_for,
    register_method,
)
from surgery_core.model.text import ensemble_text_features

NEW = ("maskclip", "sclip", "clearclip", "naclip", "gem", "segearth_ov")
# (residual, FFN, final blocks replaced) of each official variant, written here independently of the registry.
OFFICIAL = {"maskclip": (True, True, "last"), "sclip": (True, True, "last"), "clearclip": (False, False, "last"),
            "naclip": (False, False, "last"), "segearth_ov": (False, False, "last"), "gem": (True, False, "depth")}
DEPTH = 6
CLASSES = ["ship", "harbor", "airplane"]
PROMPTS = "single"  # one template: the random text tower is slow on CPU and the text side is not under test


def _randomise_biases(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for blk in model.visual.transformer.resblocks:
            blk.attn.in_proj_bias.copy_(torch.randn(blk.attn.in_proj_bias.shape, generator=g) * 0.5)
            blk.attn.out_proj.bias.copy_(torch.randn(blk.attn.out_proj.bias.shape, generator=g) * 0.5)


def _model(arch):
    torch.manual_seed(0)
    loaded = load_model(arch, random_weights=True)
    _randomise_biases(loaded.model, 1)
    return loaded


@pytest.fixture(scope="module", params=["ViT-B-32", "ViT-B-16"])
def vit(request):
    return _model(request.param)


@pytest.fixture(scope="module")
def vit_b32():
    return _model("ViT-B-32")


@functools.lru_cache(maxsize=None)
def _omega_official_way(gh, gw, sigma=5.0):
    """NACLIP's prior built as the official code builds it: a (2gh-1)x(2gw-1) Gaussian window (from a
    linspace of offsets) placed on every cell, i.e. what correlating one-hot cell images with the window
    gives (row p = the window centred on cell p, read at every cell q), then a zero CLS row and column."""
    c = 1 / (sigma * 2 ** 0.5)
    k1 = torch.linspace(-(gh - 1) * c, (gh - 1) * c, 2 * gh - 1, dtype=torch.float64)
    k2 = torch.linspace(-(gw - 1) * c, (gw - 1) * c, 2 * gw - 1, dtype=torch.float64)
    window = torch.exp(-(torch.stack(torch.meshgrid(k1, k2, indexing="ij")) ** 2).sum(0))
    n = gh * gw
    full = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    for p in range(n):
        rp, cp = divmod(p, gw)
        full[1 + p, 1:] = window[gh - 1 - rp:2 * gh - 1 - rp, gw - 1 - cp:2 * gw - 1 - cp].reshape(-1)
    return full.float()


def _softmax_rows(a):
    a = a - a.max(dim=-1, keepdim=True).values
    e = a.exp()
    return e / e.sum(dim=-1, keepdim=True)


def _head_attention(name, qi, ki, vi, hd, grid, inv_temp):
    """``A @ v`` of one head ``[B, N, hd]`` by explicit products."""
    s = hd ** -0.5
    if name == "maskclip":
        return vi.clone()
    if name == "sclip":
        a = _softmax_rows(qi @ qi.transpose(1, 2) * s) + _softmax_rows(ki @ ki.transpose(1, 2) * s)
    elif name == "clearclip":
        a = _softmax_rows(qi @ qi.transpose(1, 2) * s)
    elif name == "naclip":
        a = _softmax_rows(ki @ ki.transpose(1, 2) * s + _omega_official_way(*grid))
    elif name == "segearth_ov":
        a = sum(_softmax_rows(p @ p.transpose(1, 2) * s) for p in (qi, ki, vi))
    elif name == "gem":
        out = 0
        for p in (vi, ki, qi):
            p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            p = _softmax_rows(p @ p.transpose(1, 2) * inv_temp) @ p
            p = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            out = out + _softmax_rows(p @ p.transpose(1, 2) * inv_temp) @ vi
        return out / 3
    else:
        raise AssertionError(name)
    return a @ vi


def _reference_tokens(visual, images, name, depth=DEPTH, bias_times=1, flags=None):
    """Projected tokens of one method's path by per-head loops (official flags from ``OFFICIAL``)."""
    return _reference_all(visual, images, (name,), depth, bias_times, flags)[name]


def _reference_all(visual, images, names, depth=DEPTH, bias_times=1, flags=None, embedded=None):
    """``{name: (tokens, grid)}`` for several methods; the vanilla blocks before the last ``depth`` run once.
    embedded: ``(tokens after ln_pre, grid)`` when the caller embeds the image itself."""
    x, grid = embedded if embedded is not None else embed(visual, images)
    blocks = list(visual.transformer.resblocks)
    start = len(blocks) - min(depth, len(blocks))
    for blk in blocks[:start]:
        x = blk(x)
    out = {}
    for name in names:
        residual, ffn, which = (flags or OFFICIAL)[name]
        n = min(depth, len(blocks)) if which == "depth" else 1
        x_ori = x.clone()
        for blk in blocks[start:len(blocks) - n]:
            x_ori = blk(x_ori)
        x_new = x_ori.clone()
        for blk in blocks[len(blocks) - n:]:
            a = blk.attn
            d, nh = a.embed_dim, a.num_heads
            hd = d // nh
            h = blk.ln_1(x_ori)
            w, b = a.in_proj_weight, a.in_proj_bias
            q, k, v = h @ w[:d].T + b[:d], h @ w[d:2 * d].T + b[d:2 * d], h @ w[2 * d:].T + b[2 * d:]
            inv_temp = (h.norm(dim=-1).mean(dim=-1) * hd ** -0.5)[:, None, None]  # GEM, per image
            att = torch.zeros_like(q)
            for i in range(nh):
                sl = slice(i * hd, (i + 1) * hd)
                att[..., sl] = _head_attention(name, q[..., sl], k[..., sl], v[..., sl], hd, grid, inv_temp)
            o = att @ a.out_proj.weight.T + bias_times * a.out_proj.bias
            x_new = x_new + o if residual else o
            if ffn:
                x_new = x_new + blk.mlp(blk.ln_2(x_new))
            x_ori = blk(x_ori)
        out[name] = (visual.ln_post(x_new) @ visual.proj, grid)
    return out


def _reference_grid(tokens, name, text, grid):
    """Raw grid ``[B, K, gh, gw]``: cosine of the normalised patch tokens; SegEarth-OV minus 0.3 x CLS cosine."""
    t = tokens / tokens.norm(dim=-1, keepdim=True)
    r = t @ text.T
    if name == "segearth_ov":
        r = r - 0.3 * r[:, :1]
    b, _, k = r.shape
    return r[:, 1:].transpose(1, 2).reshape(b, k, *grid)


def _close(ours, ref):
    scale = ref.abs().max().item()
    torch.testing.assert_close(ours, ref, atol=2e-5 * max(scale, 1.0), rtol=1e-4)


@pytest.mark.parametrize("size", ["native", 448])
def test_new_methods_equal_per_head_loops(vit, size):
    visual = vit.model.visual
    s = vit.image_size if size == "native" else size
    images = torch.randn(2 if size == "native" else 1, 3, s, s, generator=torch.Generator().manual_seed(3))
    text = ensemble_text_features(vit, CLASSES, PROMPTS)
    with torch.no_grad():
        toks = tower_forward(visual, images, paths_for(NEW), DEPTH)
        grids = similarity_grids(toks, text, NEW)
        refs = _reference_all(visual, images, NEW)
        for name in NEW:
            ref, grid = refs[name]
            assert toks.grid == grid == (s // vit.patch_size,) * 2
            _close(toks.tokens[get_method(name).tokens], ref)
            _close(grids[name], _reference_grid(ref, name, text, grid))


def test_new_methods_with_sliding_windows(vit):
    visual = vit.model.visual
    # B/32: nine overlapping windows (cells averaged over up to four crops); B/16: four disjoint crops (cheaper).
    window, stride = vit.image_size, (224 if vit.patch_size == 16 else 128)
    p = vit.patch_size
    images = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(4))
    out = compute_heatmaps(vit, images, CLASSES, NEW, depth=DEPTH, resolution=Resolution.of(448, window, stride, p),
                           prompt_set=PROMPTS)
    text = ensemble_text_features(vit, CLASSES, PROMPTS)
    g = 448 // p
    starts = list(range(0, 448 - window + 1, stride))
    starts += [] if starts[-1] == 448 - window else [448 - window]
    acc = {n: torch.zeros(1, len(CLASSES), g, g) for n in NEW}
    cnt = torch.zeros(g, g)
    with torch.no_grad():
        for y in starts:
            for x in starts:
                refs = _reference_all(visual, images[:, :, y:y + window, x:x + window], NEW)
                for name, (ref, grid) in refs.items():
                    acc[name][:, :, y // p:y // p + grid[0], x // p:x // p + grid[1]] += _reference_grid(
                        ref, name, text, grid)
                cnt[y // p:y // p + grid[0], x // p:x // p + grid[1]] += 1
    for name in NEW:
        _close(torch.from_numpy(out.grids[name]), acc[name] / cnt)


def test_naclip_on_a_non_square_grid(vit):
    visual = vit.model.visual
    p = vit.patch_size
    images = torch.randn(1, 3, 5 * p, 9 * p, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        toks = tower_forward(visual, images, ("naclip",), DEPTH)
        ref, grid = _reference_tokens(visual, images, "naclip")
    assert toks.grid == grid == (5, 9)
    _close(toks.tokens["naclip"], ref)


def test_naclip_prior_shape_and_values():
    from surgery_core.model.attention import naclip_omega

    om = naclip_omega((3, 4))
    assert om.shape == (13, 13)
    assert torch.all(om[0] == 0) and torch.all(om[:, 0] == 0)
    torch.testing.assert_close(torch.diagonal(om)[1:], torch.ones(12))
    # cell (0, 0) to cell (2, 3): squared distance 4 + 9 patches
    assert om[1, 1 + 2 * 4 + 3].item() == pytest.approx(np.exp(-13 / 50), rel=1e-6)
    torch.testing.assert_close(om, _omega_official_way(3, 4))


@pytest.mark.parametrize("name", ["sclip", "segearth_ov"])
def test_out_proj_bias_added_once(vit, name):
    """Summed softmaxes go through one out_proj: the bias once. Twice would be a visibly different result."""
    visual = vit.model.visual
    images = torch.randn(1, 3, vit.image_size, vit.image_size, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours = tower_forward(visual, images, (get_method(name).tokens,), DEPTH).tokens[get_method(name).tokens]
        once, _ = _reference_tokens(visual, images, name, bias_times=1)
        twice, _ = _reference_tokens(visual, images, name, bias_times=2)
    _close(ours, once)
    assert (ours - twice).abs().max() > 100 * (ours - once).abs().max() + 1e-3


@pytest.mark.parametrize("name", NEW)
def test_residual_and_ffn_flags_are_the_official_ones(vit_b32, name):
    """MaskCLIP and SCLIP keep residual and FFN, ClearCLIP, NACLIP and SegEarth-OV drop both, GEM keeps the
    residual only; and the other choice gives other tokens (the flags matter)."""
    spec = PATHS[get_method(name).tokens]
    residual, ffn, which = OFFICIAL[name]
    assert (spec.residual, spec.ffn, spec.blocks) == (residual, ffn, which)
    if name == "gem":
        return
    visual = vit_b32.model.visual
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours = tower_forward(visual, images, (spec.name,), DEPTH).tokens[spec.name]
        flipped, _ = _reference_tokens(visual, images, name, flags={name: (not residual, not ffn, which)})
    assert (ours - flipped).abs().max() > 1e-2


def test_one_pass_computes_only_what_is_asked(vit_b32, monkeypatch):
    """A subset runs only its paths' attention; the seed's four run no new-method kernel."""
    calls = []
    for p in list(PATHS.values()):
        if p.blocks == "tail":  # computed after the tower, no per-block attention variant
            continue

        def spy(q, k, v, ctx, _f=p.attention, _n=p.name):
            calls.append(_n)
            return _f(q, k, v, ctx)
        monkeypatch.setitem(PATHS, p.name, dataclasses.replace(p, attention=spy))
    images = torch.randn(1, 3, 224, 224)
    compute_heatmaps(vit_b32, images, CLASSES, SEED_METHODS, depth=DEPTH, prompt_set=PROMPTS)
    assert set(calls) == {"vv"} and len(calls) == DEPTH
    calls.clear()
    compute_heatmaps(vit_b32, images, CLASSES, ("clearclip",), depth=DEPTH, prompt_set=PROMPTS)
    assert calls == ["clearclip"]
    calls.clear()
    out = compute_heatmaps(vit_b32, images, CLASSES, DEFAULT_METHODS, depth=DEPTH, prompt_set=PROMPTS)
    assert set(out.grids) == set(METHODS)
    # each path once per block it replaces: one pass, not one pass per method
    total = len(vit_b32.model.visual.transformer.resblocks)
    assert sorted(calls) == sorted(p.name for p in PATHS.values() for _ in range(p.n_blocks(DEPTH, total)))
    assert calls.count("vv") == calls.count("gem") == DEPTH and calls.count("sclip") == 1


def test_unknown_method_or_source_is_an_error():
    with pytest.raises(ValueError, match="unknown heatmap method 'nope'"):
        paths_for(["standard", "nope"])
    src = Source("p", "r", "c")
    with pytest.raises(ValueError, match="unknown token source 'nowhere'"):
        register_method(Method("x_test", "nowhere", "own", score_cosine, "d", src))
    with pytest.raises(ValueError, match="scoring must be a function"):
        register_method(Method("x_test", "ori", "own", "nope", "d", src))
    with pytest.raises(ValueError, match="unknown token source 'nowhere'"):
        tower_forward(load_model("Demo-ViT-32").model.visual, torch.randn(1, 3, 224, 224), ("nowhere",))
    assert "x_test" not in METHODS


def test_registry_lists_every_method_with_sources():
    assert DEFAULT_METHODS == tuple(METHODS)
    assert DEFAULT_METHODS[:10] == ("standard", "vv_qk", "vv_vv", "vv_mixed") + NEW
    assert {"resclip", "scclip"} <= set(METHODS)
    for m in METHODS.values():
        assert m.description and m.source.repo and m.source.paper and m.store_name == f"{m.name}@v{m.version}"
    assert "SimFeatUp" in METHODS["segearth_ov"].description


def test_pass_flops_count_what_each_selection_computes():
    from surgery_core.model.heatmaps import pass_flops

    visual = load_model("Demo-ViT-32").model.visual
    base = pass_flops(visual, None, 224)
    standard = pass_flops(visual, ("standard",), 224)
    four = pass_flops(visual, SEED_METHODS, 224)
    ten = pass_flops(visual, DEFAULT_METHODS, 224)
    # standard adds only the patch tokens' ln_post/proj to encode_image; the v-v path and the rest add more.
    assert base < standard < 1.05 * base < four < ten
    assert pass_flops(visual, ("gem",), 224) > pass_flops(visual, ("clearclip",), 224) > standard
