"""The torch half of the method registry: attention variants and scoring rules, by the names that
``methods`` (plain data, no torch) refers to.

Tensor layout of attention functions: ``q, k, v`` are ``[B, H, N, d_h]`` (CLS first, then the patch grid
row-major); they return ``A @ v`` per head, same shape, BEFORE ``out_proj`` (the loop applies ``out_proj``
once, so its bias is added once, whatever the number of softmaxes summed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from surgery_core.model.methods import PATHS, SCORING_RULES, official_layers


@dataclass(frozen=True)
class AttnContext:
    """What an attention variant may read besides ``q, k, v``, and the shared self-attentions of one block.

    h: the block's attention input ``ln_1(x)`` ``[B, N, D]`` (original path). grid: ``(gh, gw)`` patches.
    q, k, v: per-head ``[B, H, N, d_h]``. taps: ``(q_i, k_i)`` of the vanilla blocks a variant reads
    (:data:`ATTN_TAPS`), in block order.
    """

    h: torch.Tensor
    grid: tuple[int, int]
    q: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    taps: tuple = ()
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def self_attn(self, which: str) -> torch.Tensor:
        """``softmax(p p^T s) v`` for ``p`` = ``"q"``, ``"k"`` or ``"v"``, computed once per block whichever
        variants ask for it (SCLIP, ClearCLIP, SegEarth-OV and CLIP Surgery share them)."""
        out = self._memo.get(which)
        if out is None:
            p = {"q": self.q, "k": self.k, "v": self.v}[which]
            out = self._memo[which] = F.scaled_dot_product_attention(p, p, self.v)
        return out


AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AttnContext], torch.Tensor]

# ------------------------------------------------------------------------------------------ attention variants
# Each returns A @ v per head. SDPA's default scale is d_h ** -0.5, the `s` of every official kernel below;
# (A1 + A2) v = A1 v + A2 v, so summed softmaxes are summed SDPA outputs (exact).

def attn_vv(q, k, v, ctx):
    """CLIP Surgery: softmax(v v^T s) v."""
    return ctx.self_attn("v")


def attn_identity(q, k, v, ctx):
    """MaskCLIP: A = I, each token keeps its value."""
    return v


def attn_qq_kk(q, k, v, ctx):
    """SCLIP: [softmax(q q^T s) + softmax(k k^T s)] v, rows sum to 2 (summed, not averaged)."""
    return ctx.self_attn("q") + ctx.self_attn("k")


def attn_qq(q, k, v, ctx):
    """ClearCLIP: softmax(q q^T s) v."""
    return ctx.self_attn("q")


def attn_qq_kk_vv(q, k, v, ctx):
    """SegEarth-OV: [softmax(q q^T s) + softmax(k k^T s) + softmax(v v^T s)] v, rows sum to 3."""
    return ctx.self_attn("q") + ctx.self_attn("k") + ctx.self_attn("v")


NACLIP_SIGMA = 5.0  # patches; sinahmr/NACLIP naclip.py gaussian_std=5. (test_all.sh: "reduced naclip 5 on")
_OMEGA_CACHE: dict[tuple, torch.Tensor] = {}


def naclip_omega(grid: tuple[int, int], sigma: float = NACLIP_SIGMA, device=None, dtype=torch.float32
                 ) -> torch.Tensor:
    """NACLIP's neighbourhood prior ``[1 + gh*gw, 1 + gh*gw]``: ``exp(-d^2 / (2 sigma^2))`` with ``d`` the
    distance in patches between two grid cells (row-major), peak 1 on the diagonal, zero on the CLS row and
    column (sinahmr/NACLIP @ 0cac3a6, clip/model.py gaussian_window + get_attention_addition,
    adjust_for_cls=True). Any grid shape; cached per (grid, sigma, device, dtype)."""
    key = (tuple(grid), float(sigma), str(device), dtype)
    out = _OMEGA_CACHE.get(key)
    if out is None:
        gh, gw = grid
        rows = torch.arange(gh, dtype=torch.float64).repeat_interleave(gw)
        cols = torch.arange(gw, dtype=torch.float64).repeat(gh)
        d2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
        n = gh * gw
        full = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        full[1:, 1:] = torch.exp(-d2 / (2 * sigma ** 2))
        out = full.to(device=device, dtype=dtype)
        _OMEGA_CACHE[key] = out
    return out


def attn_naclip(q, k, v, ctx):
    """NACLIP: softmax(k k^T s + Omega) v. SDPA adds a float mask to the SCALED logits, so Omega is not scaled,
    as in the official code (sinahmr/NACLIP @ 0cac3a6, clip/model.py custom_attn)."""
    omega = naclip_omega(ctx.grid, device=q.device, dtype=q.dtype)
    return F.scaled_dot_product_attention(k, k, v, attn_mask=omega)


def attn_gem(q, k, v, ctx):
    """GEM's self-self attention (WalBouss/GEM, gem/gem_utils.py SelfSelfAttention, ss_attn_iter=1, no fixed
    temperature): for p in (v, k, q), per head, p is L2-normalised, clustered once (p <- softmax(t p p^T) p),
    renormalised, then A_p = softmax(t p p^T); output mean_p(A_p) v. Inverse temperature
    t = d_h ** -0.5 * mean over tokens of ||ln_1(x)|| (norm over the full width), per image.

    The three p run as one batch of fused attentions, t folded into the query (``softmax(t a b^T) c`` =
    SDPA(t a, b, c, scale=1)).
    """
    b = q.shape[0]
    scale = q.shape[-1] ** -0.5
    t = (ctx.h.float().norm(dim=-1).mean(dim=-1) * scale).to(q.dtype)[:, None, None, None].repeat(3, 1, 1, 1)
    p = F.normalize(torch.cat([v, k, q]), dim=-1)
    p = F.normalize(F.scaled_dot_product_attention(p * t, p, p, scale=1.0), dim=-1)
    out = F.scaled_dot_product_attention(p * t, p, v.repeat(3, 1, 1, 1), scale=1.0)
    return (out[:b] + out[b:2 * b] + out[2 * b:]) / 3


# ResCLIP (yvhangyang/ResCLIP @ 0e085f7): the RCS module without SFR (use_sfr=False). clip/model.py:326-331
# averages the vanilla attention of blocks 6-9 (indices 5-8); custom_attn with attn_strategy='resclip' (473-494)
# takes NACLIP's softmax(k k^T s + Omega) (Gaussian prior, gaussian_std 5: README's "wo_resi resclip 5") and
# mixes A = tau ((1 - lambda) A + lambda A_rcs); arch 'wo_resi': no residual, no FFN (356-360).
RESCLIP_RCS_LAYERS = (5, 6, 7, 8)
RESCLIP_RCS_WEIGHTS = (2.0, 0.3)  # (tau, lambda): configs/cfg_voc21.py, cfg_ade20k.py, cfg_context60.py


def attn_resclip(q, k, v, ctx):
    """ResCLIP's RCS: ``tau [(1 - lambda) softmax(k k^T s + Omega) + lambda mean_i softmax(q_i k_i^T s)] v``, the
    mean over the vanilla attention of the tapped blocks (``ctx.taps``). Each ``softmax(q_i k_i^T s) v`` is a fused
    attention of block i's q, k with this block's v (the N x N maps are never stored)."""
    tau, lam = RESCLIP_RCS_WEIGHTS
    if not ctx.taps:
        raise ValueError("ResCLIP's RCS reads the vanilla attention of intermediate blocks: none was tapped")
    omega = naclip_omega(ctx.grid, device=q.device, dtype=q.dtype)
    own = F.scaled_dot_product_attention(k, k, v, attn_mask=omega)
    rcs = sum(F.scaled_dot_product_attention(qi, ki, v) for qi, ki in ctx.taps) / len(ctx.taps)
    return tau * ((1 - lam) * own + lam * rcs)


#: Attention variants by the name a ``TokenPath`` gives (``methods.PATHS``).
ATTENTION: dict[str, AttentionFn] = {"vv": attn_vv, "identity": attn_identity, "qq_kk": attn_qq_kk, "qq": attn_qq,
                                     "naclip": attn_naclip, "gem": attn_gem, "qq_kk_vv": attn_qq_kk_vv,
                                     "resclip": attn_resclip}
#: Variants that read the vanilla attention (q, k) of intermediate blocks: name -> blocks, for a tower's size.
ATTN_TAPS: dict[str, Callable[[int], tuple[int, ...]]] = {
    "resclip": lambda total: official_layers(RESCLIP_RCS_LAYERS, total)}


# ------------------------------------------------------------------------------------------ scoring
def feature_surgery(tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Class-set feature surgery, closed form. tokens ``[B, N, D]`` (CLS first) and text ``[K, D]``,
    both L2-normalised. Returns ``[B, N, K]``:

    r = tokens @ text^T; w = softmax(2 r_cls) / mean(softmax(2 r_cls)) over classes, per image;
    sim = r * w - mean_over_classes(r * w).
    """
    r = tokens @ text.t()
    p = (2 * r[:, :1, :]).softmax(dim=-1)
    rw = r * (p / p.mean(dim=-1, keepdim=True))
    return rw - rw.mean(dim=-1, keepdim=True)


def single_text_surgery(tokens: torch.Tensor, text: torch.Tensor, redundant: torch.Tensor) -> torch.Tensor:
    """Single-text feature surgery: ``tokens @ (text - redundant)^T``, redundant = ensemble of ``""``."""
    return tokens @ (text - redundant).t()


def score_cosine(tokens, text, redundant):
    """Plain cosine similarity ``[B, N, K]``."""
    return tokens @ text.t()


def score_surgery(tokens, text, redundant):
    """CLIP Surgery's feature surgery (class-set, or single-text when ``redundant`` is given)."""
    return feature_surgery(tokens, text) if redundant is None else single_text_surgery(tokens, text, redundant)


SEGEARTH_CLS_LAMBDA = -0.3  # likyoo/SegEarth-OV @ 3e22a96, configs/base_config.py cls_token_lambda=-0.3


def score_cls_bias(tokens, text, redundant):
    """SegEarth-OV's global-bias alleviation: cos(patch, t) - 0.3 cos(CLS, t), the CLS being token 0 of the
    same (modified) path (segearth_segmentor.py: logits + cls_logits * cls_token_lambda)."""
    r = tokens @ text.t()
    return r + SEGEARTH_CLS_LAMBDA * r[:, :1]


SCORERS: dict[str, Callable] = {"cosine": score_cosine, "surgery": score_surgery, "cls_bias": score_cls_bias}
assert set(SCORERS) == set(SCORING_RULES), "every scoring rule named in methods has a function here"


def attention_of(path_name: str) -> AttentionFn:
    """The attention function of a registered token path."""
    name = PATHS[path_name].attention
    try:
        return ATTENTION[name]
    except KeyError:
        raise ValueError(f"token path {path_name!r}: no attention variant {name!r}; known: {list(ATTENTION)}") from None
