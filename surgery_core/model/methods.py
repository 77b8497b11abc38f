"""The built-in methods: one section of functions per method (its attention variant, its inspector rows, its own
scoring rule if any, with the official code each follows), then the records that carry them, one
:class:`~surgery_core.model.registry.TokenPath` and one :class:`~surgery_core.model.registry.Method` entry per
method in the two tables at the end (docs/DESIGN.md, "Adding a method").

Importing this module registers them (in table order, which fixes each method's colour). It re-exports the
registry (:mod:`surgery_core.model.registry`: records, ``METHODS``, ``register_method``, pass planning), so that
``surgery_core.model.methods`` is the one place to import methods from. Torch-free at import: the run
configuration reads it; each function imports torch when first called.
"""

from __future__ import annotations

from surgery_core.model.attention import naclip_omega, score_cosine, score_surgery, softmax_row
from surgery_core.model.registry import (  # noqa: F401  (re-exported: the registry's public names)
    METHOD_COLORS,
    METHODS,
    ORI,
    OFFICIAL_TOWER_BLOCKS,
    PATHS,
    POSEMBED_MODES,
    POSEMBED_RULES,
    PROBS_METHOD,
    SHARED_RULE,
    Method,
    PosEmbedRule,
    Source,
    TokenPath,
    get_method,
    get_path,
    method_color,
    method_rule,
    official_layers,
    pass_plan,
    paths_for,
    posembed_words,
    probs_rule,
    register_method,
    register_path,
    register_posembed,
    unregister_method,
)

# Attention variants return A @ v per head. SDPA's default scale is d_h ** -0.5, the `s` of every official kernel
# below; (A1 + A2) v = A1 v + A2 v, so summed softmaxes are summed SDPA outputs (exact). Rows (the inspector's) are
# one row of A divided by what A's rows sum to.


# ------------------------------------------------------------------------------------------ plain CLIP, CLIP Surgery
def attn_vv(q, k, v, ctx):
    """CLIP Surgery: softmax(v v^T s) v."""
    return ctx.self_attn("v")


def rows_vv(q, k, v, ctx, i):
    return softmax_row(v, v, i)


# ------------------------------------------------------------------------------------------ MaskCLIP
def attn_identity(q, k, v, ctx):
    """MaskCLIP: A = I, each token keeps its value."""
    return v


def rows_identity(q, k, v, ctx, i):
    out = q.new_zeros(q.shape[:3]).float()
    out[:, :, i] = 1.0
    return out


# ------------------------------------------------------------------------------------------ SCLIP
def attn_qq_kk(q, k, v, ctx):
    """SCLIP: [softmax(q q^T s) + softmax(k k^T s)] v, rows sum to 2 (summed, not averaged)."""
    return ctx.self_attn("q") + ctx.self_attn("k")


def rows_qq_kk(q, k, v, ctx, i):
    return (softmax_row(q, q, i) + softmax_row(k, k, i)) / 2


# ------------------------------------------------------------------------------------------ ClearCLIP
def attn_qq(q, k, v, ctx):
    """ClearCLIP: softmax(q q^T s) v."""
    return ctx.self_attn("q")


def rows_qq(q, k, v, ctx, i):
    return softmax_row(q, q, i)


# ------------------------------------------------------------------------------------------ NACLIP
def attn_naclip(q, k, v, ctx):
    """NACLIP: softmax(k k^T s + Omega) v. SDPA adds a float mask to the SCALED logits, so Omega is not scaled,
    as in the official code (sinahmr/NACLIP @ 0cac3a6, clip/model.py custom_attn)."""
    import torch.nn.functional as F

    omega = naclip_omega(ctx.grid, device=q.device, dtype=q.dtype)
    return F.scaled_dot_product_attention(k, k, v, attn_mask=omega)


def rows_naclip(q, k, v, ctx, i):
    return softmax_row(k, k, i, naclip_omega(ctx.grid, device=q.device)[i])


# ------------------------------------------------------------------------------------------ GEM
def attn_gem(q, k, v, ctx):
    """GEM's self-self attention (WalBouss/GEM, gem/gem_utils.py SelfSelfAttention, ss_attn_iter=1, no fixed
    temperature): for p in (v, k, q), per head, p is L2-normalised, clustered once (p <- softmax(t p p^T) p),
    renormalised, then A_p = softmax(t p p^T); output mean_p(A_p) v. Inverse temperature
    t = d_h ** -0.5 * mean over tokens of ||ln_1(x)|| (norm over the full width), per image.

    The three p run as one batch of fused attentions, t folded into the query (``softmax(t a b^T) c`` =
    SDPA(t a, b, c, scale=1)).
    """
    import torch
    import torch.nn.functional as F

    b = q.shape[0]
    scale = q.shape[-1] ** -0.5
    t = (ctx.h.float().norm(dim=-1).mean(dim=-1) * scale).to(q.dtype)[:, None, None, None].repeat(3, 1, 1, 1)
    p = F.normalize(torch.cat([v, k, q]), dim=-1)
    p = F.normalize(F.scaled_dot_product_attention(p * t, p, p, scale=1.0), dim=-1)
    out = F.scaled_dot_product_attention(p * t, p, v.repeat(3, 1, 1, 1), scale=1.0)
    return (out[:b] + out[b:2 * b] + out[2 * b:]) / 3


def rows_gem(q, k, v, ctx, i):
    """GEM: mean over p in (v, k, q) of ``softmax(t p'_i p'^T)``, p' the clustered, renormalised p."""
    import torch.nn.functional as F

    t = (ctx.h.float().norm(dim=-1).mean(dim=-1) * q.shape[-1] ** -0.5)[:, None, None, None]
    out = 0
    for p in (v, k, q):
        p = F.normalize(p.float(), dim=-1)
        p = F.normalize(F.scaled_dot_product_attention(p * t, p, p, scale=1.0), dim=-1)
        out = out + ((p[:, :, i:i + 1] * t) @ p.transpose(-1, -2))[:, :, 0].softmax(dim=-1)
    return out / 3


# ------------------------------------------------------------------------------------------ SegEarth-OV
SEGEARTH_CLS_LAMBDA = -0.3  # likyoo/SegEarth-OV @ 3e22a96, configs/base_config.py cls_token_lambda=-0.3


def attn_qq_kk_vv(q, k, v, ctx):
    """SegEarth-OV: [softmax(q q^T s) + softmax(k k^T s) + softmax(v v^T s)] v, rows sum to 3."""
    return ctx.self_attn("q") + ctx.self_attn("k") + ctx.self_attn("v")


def rows_qq_kk_vv(q, k, v, ctx, i):
    return (softmax_row(q, q, i) + softmax_row(k, k, i) + softmax_row(v, v, i)) / 3


def score_cls_bias(tokens, text, redundant):
    """SegEarth-OV's global-bias alleviation: cos(patch, t) - 0.3 cos(CLS, t), the CLS being token 0 of the
    same (modified) path (segearth_segmentor.py: logits + cls_logits * cls_token_lambda)."""
    r = tokens @ text.t()
    return r + SEGEARTH_CLS_LAMBDA * r[:, :1]


# ------------------------------------------------------------------------------------------ ResCLIP
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
    import torch.nn.functional as F

    tau, lam = RESCLIP_RCS_WEIGHTS
    if not ctx.taps:
        raise ValueError("ResCLIP's RCS reads the vanilla attention of intermediate blocks: none was tapped")
    omega = naclip_omega(ctx.grid, device=q.device, dtype=q.dtype)
    own = F.scaled_dot_product_attention(k, k, v, attn_mask=omega)
    rcs = sum(F.scaled_dot_product_attention(qi, ki, v) for qi, ki in ctx.taps) / len(ctx.taps)
    return tau * ((1 - lam) * own + lam * rcs)


def rows_resclip(q, k, v, ctx, i):
    lam = RESCLIP_RCS_WEIGHTS[1]
    own = softmax_row(k, k, i, naclip_omega(ctx.grid, device=q.device)[i])
    rcs = sum(softmax_row(qj, kj, i) for qj, kj in ctx.taps) / len(ctx.taps)
    return (1 - lam) * own + lam * rcs  # tau divided out (row_mass)


def resclip_reads(total: int) -> tuple[int, ...]:
    """The blocks whose vanilla attention RCS averages, in a tower of ``total`` blocks."""
    return official_layers(RESCLIP_RCS_LAYERS, total)


# ------------------------------------------------------------------------------------------ SC-CLIP
def scclip_tokens(visual, hidden, grid):
    """SC-CLIP's patch tokens from the vanilla block outputs (:func:`surgery_core.model.multilayer.scclip_tail`)."""
    from surgery_core.model.multilayer import scclip_tail

    return scclip_tail(visual, hidden, grid)


def scclip_reads(total: int) -> tuple[int, ...]:
    """The vanilla block outputs SC-CLIP reads in a tower of ``total`` blocks."""
    from surgery_core.model.multilayer import scclip_needs

    return scclip_needs(total)


# ------------------------------------------------------------------------------------------ the registry
# The official code each method follows: paper, repository and the commit read.
_SURGERY = Source("Li et al., CLIP Surgery, Pattern Recognition 2025 (arXiv 2304.05653)",
                  "github.com/xmed-lab/CLIP_Surgery", "d4696d47f49cfe70f49140afe5eb94f94c5f59bc")
_CLIP = Source("Radford et al., CLIP, ICML 2021", "github.com/openai/CLIP", "unmodified forward")
_MASKCLIP = Source("Zhou, Loy, Dai, MaskCLIP, ECCV 2022", "github.com/chongzhou96/MaskCLIP",
                   "245d31f809be9c1938f8f30561b6bf9ed033d746")
_SCLIP = Source("Wang, Mei, Yuille, SCLIP, ECCV 2024", "github.com/wangf3014/SCLIP",
                "b56bd3014b9e8a3ee3450bcfc53700a67d627b7a")
_CLEARCLIP = Source("Lan et al., ClearCLIP, ECCV 2024", "github.com/mc-lan/ClearCLIP",
                    "ad68a404d55d48d27330b93554eb64a234ff717f")
_NACLIP = Source("Hajimiri, Ben Ayed, Dolz, NACLIP, WACV 2025", "github.com/sinahmr/NACLIP",
                 "0cac3a651f753b11315ea799cfbfabf79da1bd76")
_GEM = Source("Bousselham et al., Grounding Everything (GEM), CVPR 2024", "github.com/WalBouss/GEM",
              "5fa677ca1dcf10d39ceceadacf3e3cff414d7c27")
_RESCLIP = Source("Yang, Deng, Li, Duan, ResCLIP, CVPR 2025 (arXiv 2411.15851)", "github.com/yvhangyang/ResCLIP",
                  "0e085f7f52f06098b383599e9653cd28cc665a8c")
_SCCLIP = Source("Bai et al., Self-Calibrated CLIP (SC-CLIP), arXiv 2411.15869", "github.com/SuleBai/SC-CLIP",
                 "0417ba92851e9dd7432d608f10a0804d01a23062")
_SEGEARTH = Source("Li et al., SegEarth-OV, CVPR 2025 (arXiv 2410.01768)", "github.com/likyoo/SegEarth-OV",
                   "3e22a969b32c6d751bdbba64a88a0b670e630f55")

# Registration order is the registry's order: it fixes each method's colour and the order of every listing.
for _p in (
    # CLIP Surgery's v-v path over the last `depth` blocks: residual kept, FFN skipped (clip_surgery_model.py:257-274)
    TokenPath("vv", attn_vv, "depth", residual=True, ffn=False, rows=rows_vv),
    # Official MaskCLIP ViT: `v += x; v = ffn(norm2(v), identity=v)` (mmseg/models/backbones/vit.py:96-104)
    TokenPath("maskclip", attn_identity, "last", residual=True, ffn=True, rows=rows_identity),
    # SCLIP: `x = x + custom_attn(...); x = x + mlp(ln_2(x))` on resblocks[-1:] (clip/model.py:249-251)
    TokenPath("sclip", attn_qq_kk, "last", residual=True, ffn=True, rows=rows_qq_kk, row_mass=2.0),
    # ClearCLIP: ignore_residual=True, output = custom_attn only (open_clip/transformer.py:523-528)
    TokenPath("clearclip", attn_qq, "last", residual=False, ffn=False, rows=rows_qq),
    # NACLIP arch='reduced': x = custom_attn(...) only (clip/model.py:115-119)
    TokenPath("naclip", attn_naclip, "last", residual=False, ffn=False, rows=rows_naclip),
    # GEM: x_gem = x_gem + ls_1(gem_out), no FFN, over the same last blocks as Surgery (gem_utils.py GEMResidualBlock)
    TokenPath("gem", attn_gem, "depth", residual=True, ffn=False, rows=rows_gem),
    # SegEarth-OV model_type='SegEarth', ignore_residual=True (open_clip/transformer.py:526-535, 641-645)
    TokenPath("segearth", attn_qq_kk_vv, "last", residual=False, ffn=False, rows=rows_qq_kk_vv, row_mass=3.0),
    # ResCLIP arch='wo_resi': x = custom_attn(...) only (clip/model.py:356-360); RCS reads blocks 5-8's attention
    TokenPath("resclip", attn_resclip, "last", residual=False, ffn=False, reads=resclip_reads, rows=rows_resclip,
              row_mass=RESCLIP_RCS_WEIGHTS[0]),
    # SC-CLIP: computed after the tower from its block outputs and the last block's weights (multilayer.py)
    TokenPath("scclip", scclip_tokens, "tail", residual=False, ffn=False, reads=scclip_reads),
):
    register_path(_p)

for _m in (
    Method("standard", ORI, "own", score_cosine, "Plain CLIP: q-k tokens, cosine similarity (the seed's baseline).",
           _CLIP, posembed="bilinear_size"),
    Method("vv_qk", ORI, "own", score_surgery, "q-k tokens with feature surgery: the effect of feature surgery alone.",
           _SURGERY, posembed="bilinear_size"),
    Method("vv_vv", "vv", "own", score_surgery, "v-v path end to end (its own CLS) with feature surgery.", _SURGERY,
           posembed="bilinear_size"),
    Method("vv_mixed", "vv", "ori", score_surgery,
           "Published CLIP Surgery: CLS from q-k, patches from v-v, feature surgery.", _SURGERY,
           posembed="bilinear_size"),
    Method("maskclip", "maskclip", "own", score_cosine,
           "MaskCLIP (official ViT code): last block's attention = identity, residual and FFN kept; cosine.",
           _MASKCLIP, posembed="bicubic_size"),
    Method("sclip", "sclip", "own", score_cosine,
           "SCLIP: last block softmax(qq^T)+softmax(kk^T) (summed), residual and FFN kept; cosine.", _SCLIP,
           posembed="bicubic_scale"),
    Method("clearclip", "clearclip", "own", score_cosine,
           "ClearCLIP: last block softmax(qq^T), no residual, no FFN; cosine.", _CLEARCLIP, posembed="bicubic_scale"),
    Method("naclip", "naclip", "own", score_cosine,
           "NACLIP: last block softmax(kk^T + Gaussian prior, sigma 5 patches), no residual, no FFN; cosine.",
           _NACLIP, posembed="bicubic_scale"),
    Method("gem", "gem", "own", score_cosine,
           "GEM: self-self attention (q, k, v normalised, one clustering step, adaptive temperature) on the "
           "surgery depth's blocks, residual kept, no FFN; cosine.", _GEM, posembed="bicubic_antialias"),
    Method("segearth_ov", "segearth", "own", score_cls_bias,
           "SegEarth-OV without SimFeatUp (a trained upsampler): last block qq+kk+vv softmaxes, no residual, "
           "no FFN; cos(patch) - 0.3 cos(its CLS).", _SEGEARTH, posembed="bicubic_scale"),
    Method("resclip", "resclip", "own", score_cosine,
           "ResCLIP, RCS only: last block tau[(1-lambda) softmax(kk^T + NACLIP prior) + lambda mean of blocks 6-9's "
           "q-k attention] (tau 2, lambda 0.3), no residual, no FFN; cosine. Without SFR (semantic feedback "
           "refinement: a second last-block pass scored against the class texts and refined by PAMR).",
           _RESCLIP, posembed="bicubic_scale"),
    Method("scclip", "scclip", "ori", score_cosine,
           "SC-CLIP, all of it (one pass, CLIP alone): LOF anomaly-token repair before the last block, its attention "
           "guided by block 8's feature similarities, 0.3 CLS, aggregation over similar patches (blocks 8, 3), "
           "blocks 3-9 fused through the last block; cosine (no CLS of its own: the vanilla one).",
           _SCCLIP, posembed="bicubic_scale"),
):
    register_method(_m)


# ------------------------------------------------------------------------------------------ defaults
#: The seed's four methods (what the dashboard's Compare page shows by default).
SEED_METHODS = ("standard", "vv_qk", "vv_vv", "vv_mixed")
#: Every built-in method, in registry order (the order that fixes each method's colour): the run's default.
DEFAULT_METHODS = tuple(METHODS)
