"""ResCLIP (RCS) and SC-CLIP against independent loops written from their official code.

ResCLIP: yvhangyang/ResCLIP @ 0e085f7 clip/model.py (forward 295-369, custom_attn 451-605, use_sfr=False);
SC-CLIP: SuleBai/SC-CLIP @ 0417ba9 clip/model.py (lof_pytorch 208-227, forward 254-316, custom_attn 318-341,
adaptively_aggregate 343-346, mean_interpolation 348-373). The loops below use explicit per-head matrix products,
the official LOF (norm of differences), the official outlier bookkeeping (index lists) and no production helper.
Random ViT-B/32 weights with random biases (``test_methods``); 448 px in one pass embeds with the official
bicubic-by-scale resize (``test_posembed``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.model.test_methods import CLASSES, DEPTH, PROMPTS, _close, _model, _omega_official_way, _softmax_rows
from tests.model.test_posembed import _official_embed, _sclip_family

from surgery_core.model.forward import tower_forward
from surgery_core.model.heatmaps import compute_heatmaps
from surgery_core.model.loading import load_model
from surgery_core.model.methods import METHODS, official_layers
from surgery_core.model.text import ensemble_text_features


@pytest.fixture(scope="module")
def b32():
    return _model("ViT-B-32")


def _qkv(blk, x):
    a = blk.attn
    d = a.embed_dim
    h = blk.ln_1(x)
    w, b = a.in_proj_weight, a.in_proj_bias
    return h @ w[:d].T + b[:d], h @ w[d:2 * d].T + b[d:2 * d], h @ w[2 * d:].T + b[2 * d:]


def _per_head(t, i, hd):
    return t[..., i * hd:(i + 1) * hd]


def _resclip_reference(visual, x, grid, tau=2.0, lam=0.3):
    """ResCLIP with use_rcs, without SFR, arch wo_resi, attn_strategy resclip, gaussian_std 5."""
    blocks = list(visual.transformer.resblocks)
    maps = []
    for blk in blocks[:-1]:
        q, k, _ = _qkv(blk, x)
        hd = blk.attn.embed_dim // blk.attn.num_heads
        maps.append(torch.stack([_softmax_rows(_per_head(q, i, hd) @ _per_head(k, i, hd).transpose(1, 2) * hd ** -0.5)
                                 for i in range(blk.attn.num_heads)], dim=1))  # [B, H, N, N]
        x = blk(x)
    rcs = torch.stack([maps[i] for i in range(5, 9)]).mean(dim=0)
    blk = blocks[-1]
    q, k, v = _qkv(blk, x)
    hd = blk.attn.embed_dim // blk.attn.num_heads
    omega = _omega_official_way(*grid)
    out = torch.zeros_like(v)
    for i in range(blk.attn.num_heads):
        ki, vi = _per_head(k, i, hd), _per_head(v, i, hd)
        a = _softmax_rows(ki @ ki.transpose(1, 2) * hd ** -0.5 + omega)
        a = tau * ((1 - lam) * a + lam * rcs[:, i])
        out[..., i * hd:(i + 1) * hd] = a @ vi
    x = out @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias
    return visual.ln_post(x) @ visual.proj


def _lof_official(x, n_neighbors=30, contamination=0.05):
    distances = torch.norm(x[:, None] - x[None, :], dim=2, p=2) ** 2
    knn_distances, knn_indices = torch.topk(distances, k=n_neighbors + 1, largest=False)
    knn_distances, knn_indices = knn_distances[:, 1:], knn_indices[:, 1:]
    k_distances = knn_distances[:, -1].unsqueeze(1).expand_as(knn_distances)
    reach_distances = torch.max(knn_distances, k_distances)
    lrd = n_neighbors / torch.nan_to_num(reach_distances.mean(dim=1), nan=1e-6)
    lof = (lrd[knn_indices] / lrd.unsqueeze(1)).mean(dim=1)
    threshold = torch.quantile(lof.to(torch.float32), 1 - contamination)
    return torch.where(lof > threshold)[0]


def _mean_interpolation_official(fmap, top):
    """Each listed cell replaced by the mean of its non-listed 8-neighbours, by explicit loops."""
    _, c, h, w = fmap.shape
    listed = {(int(r), int(cc)) for r, cc in top}
    out = fmap.clone()
    for r, cc in listed:
        acc, n = torch.zeros(c), 0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, c2 = r + dr, cc + dc
                if (dr or dc) and 0 <= rr < h and 0 <= c2 < w and (rr, c2) not in listed:
                    acc, n = acc + fmap[0, :, rr, c2], n + 1
        if n:
            out[0, :, r, cc] = acc / n
    return out


def _scclip_attn(blk, x, mid):
    q, k, v = _qkv(blk, x)
    hd = blk.attn.embed_dim // blk.attn.num_heads
    m = (mid - torch.mean(mid)) * 3.0
    m[m < 0.0] = float("-inf")
    out = torch.zeros_like(v)
    for i in range(blk.attn.num_heads):
        ki, vi = _per_head(k, i, hd), _per_head(v, i, hd)
        a = (F.softmax(m, dim=-1) + F.softmax(ki @ ki.T * hd ** -0.5, dim=-1)) / 2
        out[:, i * hd:(i + 1) * hd] = a @ vi
    return out @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias


def _aggregate(feats, corrs):
    return (corrs / (corrs.sum(dim=-1, keepdim=True) + 1e-6)) @ feats


def _scclip_reference(visual, x, grid):
    """SC-CLIP's forward for one image (official: batch of one), tokens ``[N + 1, D]`` after ln_pre."""
    gh, gw = grid
    blocks = list(visual.transformer.resblocks)
    feats = []
    for blk in blocks[:-1]:
        x = blk(x[None])[0]
        feats.append(x)
    cls = x[:1]
    out_idx = _lof_official(x[1:])
    top = [(int(i) // gw, int(i) % gw) for i in out_idx]
    d = x.shape[-1]
    patches = _mean_interpolation_official(x[1:].T.reshape(1, d, gh, gw), top).reshape(d, -1).T
    pre = _mean_interpolation_official(feats[8][1:].T.reshape(1, d, gh, gw), top).reshape(d, -1).T
    pre = pre / pre.norm(dim=1, keepdim=True)
    before = pre @ pre.T
    mid = before.clone()
    before[before < 0.4] = 0.0
    x = _aggregate(patches, before)
    x = _scclip_attn(blocks[-1], blocks[-1].ln_1(x), mid) + 0.3 * cls
    post = feats[3][1:] / feats[3][1:].norm(dim=1, keepdim=True)
    after = post @ post.T
    after[after < 0.4] = 0.0
    x = _aggregate(x, after)
    re = torch.zeros_like(feats[0])
    for i in range(3, 10):
        re = re + feats[i]
    r = _scclip_attn(blocks[-1], blocks[-1].ln_1(re[1:]), mid) + 0.3 * re[:1]
    x = x + _aggregate(r, after)
    return visual.ln_post(x) @ visual.proj


@pytest.mark.parametrize("size", [224, 448])
def test_resclip_equals_its_official_loop(b32, size):
    visual = b32.model.visual
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        ours = tower_forward(visual, images, ("resclip",), DEPTH, "bicubic_scale").tokens["resclip"]
        x, grid = _official_embed(visual, images, _sclip_family)
        ref = _resclip_reference(visual, x, grid)
        without_rcs = _resclip_reference(visual, x, grid, tau=1.0, lam=0.0)  # NACLIP's attention alone
    _close(ours, ref)
    assert (ours - without_rcs).abs().max() > 1e-2  # the RCS term matters


@pytest.mark.parametrize("size", [224, 448])
def test_scclip_equals_its_official_loop(b32, size):
    visual = b32.model.visual
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(22))
    with torch.no_grad():
        ours = tower_forward(visual, images, ("scclip",), DEPTH, "bicubic_scale").tokens
        x, grid = _official_embed(visual, images, _sclip_family)
        for b in range(images.shape[0]):  # one image at a time, as the official code runs
            _close(ours["scclip"][b, 1:], _scclip_reference(visual, x[b], grid))
    # no CLS of its own: the slot holds the vanilla one, which the method reads (cls="ori")
    torch.testing.assert_close(ours["scclip"][:, 0], ours["ori"][:, 0])
    assert METHODS["scclip"].cls == "ori"


def test_both_in_the_registry_everywhere_the_others_are(b32):
    text = ensemble_text_features(b32, CLASSES, PROMPTS)
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(23))
    out = compute_heatmaps(b32, images, CLASSES, tuple(METHODS), depth=DEPTH, prompt_set=PROMPTS)
    with torch.no_grad():
        x, grid = _official_embed(b32.model.visual, images, _sclip_family)
        ref = _scclip_reference(b32.model.visual, x[0], grid)
    r = F.normalize(ref, dim=-1) @ text.T
    _close(torch.from_numpy(out.grids["scclip"][0]), r.T.reshape(len(CLASSES), *grid))
    for name in ("resclip", "scclip"):
        m = METHODS[name]
        assert m.source.commit and m.posembed == "bicubic_scale" and np.isfinite(out.grids[name]).all()
    assert "SFR" in METHODS["resclip"].description  # what is not implemented is said


def test_shallow_towers_and_small_grids():
    """The demo model has 4 blocks: the official 12-block indices are scaled (not official, said so); a grid
    of fewer than 31 patches uses n - 1 LOF neighbours. Both still compute finite, distinct maps."""
    assert official_layers((5, 6, 7, 8), 12) == (5, 6, 7, 8) and official_layers((5, 6, 7, 8), 24) == (5, 6, 7, 8)
    assert official_layers((5, 6, 7, 8), 4) == (1, 2)
    torch.manual_seed(0)
    demo = load_model("Demo-ViT-32", random_weights=True)
    for size in (224, 128):  # 7x7 and 4x4 patches
        out = compute_heatmaps(demo, torch.randn(1, 3, size, size), ["ship", "harbor"], ("naclip", "resclip",
                                                                                            "scclip"))
        assert all(np.isfinite(g).all() for g in out.grids.values())
        assert not np.allclose(out.grids["resclip"], out.grids["naclip"])
