"""The dual-path forward and the four heatmaps, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from surgery_core.model.attention import feature_surgery
from surgery_core.model.encoder import Resolution, image_tokens
from surgery_core.model.forward import embed
from surgery_core.model.heatmaps import compute_heatmaps, similarity_grids
from surgery_core.model.loading import load_model
from surgery_core.model.methods import METHODS, ORI, SHARED_RULE

torch.manual_seed(0)


def dual_path(loaded, images, depth):
    """The vanilla (q-k) and v-v tokens of one pass at the model's own size, through the model's one encoder."""
    toks = image_tokens(loaded, images, Resolution.of(images.shape[-1], patch=loaded.patch_size),
                        ((SHARED_RULE, ORI), (SHARED_RULE, "vv")), depth).passes[SHARED_RULE]
    return toks.tokens[ORI], toks.tokens["vv"], toks


@pytest.fixture(scope="module")
def demo_random():
    """The demo architecture (6 blocks, width 128) with random weights: fast, and a real open_clip ViT."""
    torch.manual_seed(0)
    return load_model("Demo-ViT-32", random_weights=True)


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    return load_model("ViT-B-32", random_weights=True)


def _reference_tokens(visual, images, depth, embedded=None):
    """Both paths with plain per-head loops of matrix products (no SDPA, no fused projections). embedded: the
    tokens after ``ln_pre`` when the caller embeds the image itself."""
    x = embedded if embedded is not None else embed(visual, images)[0]
    blocks = list(visual.transformer.resblocks)
    depth = min(depth, len(blocks))  # a depth beyond the tower means every block (the demo ViT has 4)
    for blk in blocks[: len(blocks) - depth]:
        x = blk(x)
    x_ori, x_new = x.clone(), x.clone()
    for blk in blocks[len(blocks) - depth:]:
        a = blk.attn
        d = a.embed_dim
        hd = d // a.num_heads
        h = blk.ln_1(x_ori)
        wq, wk, wv = a.in_proj_weight[:d], a.in_proj_weight[d:2 * d], a.in_proj_weight[2 * d:]
        bq, bk, bv = a.in_proj_bias[:d], a.in_proj_bias[d:2 * d], a.in_proj_bias[2 * d:]
        q, k, v = h @ wq.T + bq, h @ wk.T + bk, h @ wv.T + bv
        out_qk, out_vv = torch.zeros_like(q), torch.zeros_like(q)
        for i in range(a.num_heads):
            s = slice(i * hd, (i + 1) * hd)
            qi, ki, vi = q[..., s], k[..., s], v[..., s]
            out_qk[..., s] = torch.softmax(qi @ ki.transpose(-1, -2) / hd ** 0.5, dim=-1) @ vi
            out_vv[..., s] = torch.softmax(vi @ vi.transpose(-1, -2) / hd ** 0.5, dim=-1) @ vi
        o_qk = out_qk @ a.out_proj.weight.T + a.out_proj.bias
        o_vv = out_vv @ a.out_proj.weight.T + a.out_proj.bias
        x_new = x_new + o_vv
        x_ori = x_ori + o_qk
        x_ori = x_ori + blk.mlp(blk.ln_2(x_ori))
    return visual.ln_post(x_ori) @ visual.proj, visual.ln_post(x_new) @ visual.proj


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_dual_path_matches_plain_loop(demo_random, depth):
    visual = demo_random.model.visual
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ori, vv, _ = dual_path(demo_random, images, depth)
        ref_ori, ref_vv = _reference_tokens(visual, images, depth)
    torch.testing.assert_close(ori, ref_ori, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(vv, ref_vv, atol=2e-5, rtol=1e-4)
    # The two paths really differ once the v-v path exists.
    assert (ori[:, 1:] - vv[:, 1:]).abs().max() > 1e-3


def test_ori_cls_equals_encode_image(vit_b32):
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ori, _, _ = dual_path(vit_b32, images, 6)
        ref = vit_b32.model.encode_image(images)
    torch.testing.assert_close(ori[:, 0], ref, atol=1e-4, rtol=1e-4)


def test_depth_zero_has_no_vv_path(demo_random):
    images = torch.randn(1, 3, 224, 224)
    out = compute_heatmaps(demo_random, images, ["airplane", "ship", "vehicle"], depth=0)
    np.testing.assert_array_equal(out.grids["vv_vv"], out.grids["vv_qk"])
    np.testing.assert_array_equal(out.grids["vv_mixed"], out.grids["vv_qk"])
    assert not np.allclose(out.grids["standard"], out.grids["vv_qk"])


def test_every_method_distinct_at_default_depth(demo_random):
    out = compute_heatmaps(demo_random, torch.randn(1, 3, 224, 224), ["airplane", "ship", "vehicle"])
    assert set(out.grids) == set(METHODS)
    assert {"standard", "vv_qk", "vv_vv", "vv_mixed"} < set(METHODS)
    names = list(out.grids)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert not np.allclose(out.grids[names[i]], out.grids[names[j]]), (names[i], names[j])
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, rtol=1e-5)


def test_feature_surgery_closed_form_equals_elementwise():
    """The official element-wise form (features * text, weighted, minus the class mean, summed)."""
    g = torch.Generator().manual_seed(1)
    tokens = F.normalize(torch.randn(3, 10, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(5, 16, generator=g), dim=-1)
    ours = feature_surgery(tokens, text)
    ref = torch.empty(3, 10, 5)
    for b in range(3):  # per image: the official code's w broadcasts over a batch of one
        prob = (tokens[b, :1] @ text.T * 2).softmax(-1)
        w = prob / prob.mean(-1, keepdim=True)
        feats = tokens[b].reshape(10, 1, 16) * text.reshape(1, 5, 16)
        feats = feats * w.reshape(1, 5, 1)
        feats = feats - feats.mean(1, keepdim=True)
        ref[b] = feats.sum(-1)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    # Class-set surgery removes what all classes share: each token's similarities sum to zero over classes.
    torch.testing.assert_close(ours.sum(-1), torch.zeros(3, 10), atol=1e-6, rtol=0)


def test_standard_is_plain_cosine(demo_random):
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ori, _, toks = dual_path(demo_random, images, 6)
    text = F.normalize(torch.randn(4, ori.shape[-1]), dim=-1)
    grids = similarity_grids(toks, text, ["standard"])
    patch = F.normalize(ori[0, 1 + 7 * 2 + 3], dim=-1)  # row 2, column 3 of the 7x7 grid
    torch.testing.assert_close(grids["standard"][0, :, 2, 3], patch @ text.T, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch,size,grid", [("ViT-B-32", 224, 7), ("ViT-B-32", 448, 14),
                                            ("ViT-B-16", 224, 14), ("ViT-B-16", 448, 28)])
def test_grid_shapes(arch, size, grid):
    loaded = load_model(arch, random_weights=True)
    out = compute_heatmaps(loaded, torch.randn(1, 3, size, size), ["ship", "harbor"])
    for g in out.grids.values():
        assert g.shape == (1, 2, grid, grid) and g.dtype == np.float32


def test_sliding_windows_average_overlaps(demo_random):
    classes = ["airplane", "ship"]
    images = torch.randn(1, 3, 448, 448)
    tiled = compute_heatmaps(demo_random, images, classes, resolution=Resolution.of(448, 224, 224))
    # With stride = window, each quadrant is exactly its own forward pass.
    top_left = compute_heatmaps(demo_random, images[:, :, :224, :224], classes)
    np.testing.assert_allclose(tiled.grids["vv_mixed"][..., :7, :7], top_left.grids["vv_mixed"], atol=1e-5)
    overlapped = compute_heatmaps(demo_random, images, classes, resolution=Resolution.of(448, 224, 96))
    assert overlapped.grids["standard"].shape == (1, 2, 14, 14)
    # Windows at x = 0, 96, 192 px: grid column 6 (px 192-224) lies in all three, and is their mean.
    cols = [compute_heatmaps(demo_random, images[:, :, :224, x:x + 224], classes).grids["standard"]
            for x in (0, 96, 192)]
    expect = np.mean([cols[0][..., 0, 6], cols[1][..., 0, 3], cols[2][..., 0, 0]], axis=0)
    np.testing.assert_allclose(overlapped.grids["standard"][..., 0, 6], expect, atol=1e-5)


def test_text_features_cached_per_class_list(demo_random):
    from surgery_core.model.prompts import PROMPT_SETS
    from surgery_core.model.text import ensemble_text_features

    assert len(PROMPT_SETS["surgery85"]) == 85
    a = ensemble_text_features(demo_random, ["ship", "vehicle"])
    b = ensemble_text_features(demo_random, ["ship", "vehicle"])
    assert a is b and a.shape[0] == 2
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
