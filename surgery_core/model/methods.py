"""The method registry: every training-free localisation method as data, read by one forward loop.

Self-contained (torch only), so that it can move into a model subpackage unchanged.

Two registries:

* ``PATHS``: a *token source* besides the vanilla tower (``"ori"``). A path is an attention variant (a
  small function of the per-head ``q, k, v`` of the ORIGINAL path's block input) plus flags: how many final
  blocks it replaces (``"last"`` = 1, ``"depth"`` = the run's surgery depth), whether it keeps the residual,
  whether it runs the FFN. Every path reads the same ``q, k, v`` as the vanilla block, so one pass of the tower
  serves all of them (``surgery.tower_forward``).
* ``METHODS``: a named heatmap: which path's patch tokens, where the CLS comes from (the path's own, or the
  vanilla one), how the grid is scored (plain cosine, CLIP Surgery's feature surgery, SegEarth-OV's CLS
  bias), a one-line description, its source (paper, official repository, commit read) and a definition
  version that goes into the run-store key (bump it when a definition changes).

Adding a method = one attention function, one ``register_path`` and one ``register_method``; the forward loop
and the scoring loop never change. Unknown paths, methods or scorers raise ``KeyError``-free ``ValueError``s.

Tensor layout of attention functions: ``q, k, v`` are ``[B, H, N, d_h]`` (CLS first, then the patch grid
row-major); they return ``A @ v`` per head, same shape, BEFORE ``out_proj`` (the loop applies ``out_proj``
once, so its bias is added once, whatever the number of softmaxes summed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AttnContext:
    """What an attention variant may read besides ``q, k, v``, and the shared self-attentions of one block.

    h: the block's attention input ``ln_1(x)`` ``[B, N, D]`` (original path). grid: ``(gh, gw)`` patches.
    q, k, v: per-head ``[B, H, N, d_h]``.
    """

    h: torch.Tensor
    grid: tuple[int, int]
    q: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
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


@dataclass(frozen=True)
class Source:
    """Where a definition comes from: paper, official repository and the commit whose code was read."""

    paper: str
    repo: str
    commit: str

    def __str__(self) -> str:
        short = self.commit[:7] if len(self.commit) == 40 else self.commit
        return f"{self.paper}; {self.repo} @ {short}"


@dataclass(frozen=True)
class TokenPath:
    """A token source computed alongside the vanilla tower (see module docstring)."""

    name: str
    attention: AttentionFn
    blocks: Literal["last", "depth"]
    residual: bool
    ffn: bool

    def n_blocks(self, depth: int, total: int) -> int:
        """How many final blocks this path replaces for a surgery ``depth`` in a tower of ``total`` blocks."""
        return min(depth, total) if self.blocks == "depth" else min(1, total)


@dataclass(frozen=True)
class Method:
    """A heatmap method. tokens: ``"ori"`` or a registered path; cls: ``"own"`` or ``"ori"`` (the CLS token
    that feature surgery or the CLS bias reads); scoring: a key of ``SCORERS``."""

    name: str
    tokens: str
    cls: Literal["own", "ori"]
    scoring: str
    description: str
    source: Source
    version: int = 1

    @property
    def store_name(self) -> str:
        """Name of this method's grids in the run store: name and definition version."""
        return f"{self.name}@v{self.version}"


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


# ------------------------------------------------------------------------------------------ registries
PATHS: dict[str, TokenPath] = {}
METHODS: dict[str, Method] = {}
ORI = "ori"  # the vanilla tower: always computed (class probabilities and every path read it)


def register_path(path: TokenPath) -> TokenPath:
    if path.name in PATHS or path.name == ORI:
        raise ValueError(f"token source {path.name!r} is already registered")
    PATHS[path.name] = path
    return path


def register_method(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"heatmap method {method.name!r} is already registered")
    if method.tokens != ORI and method.tokens not in PATHS:
        raise ValueError(f"method {method.name!r}: unknown token source {method.tokens!r}; "
                         f"known: {[ORI, *PATHS]}")
    if method.cls not in ("own", "ori"):
        raise ValueError(f"method {method.name!r}: cls must be 'own' or 'ori', got {method.cls!r}")
    if method.scoring not in SCORERS:
        raise ValueError(f"method {method.name!r}: unknown scoring {method.scoring!r}; known: {list(SCORERS)}")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown heatmap method {name!r}; registered: {list(METHODS)}") from None


def get_path(name: str) -> TokenPath:
    try:
        return PATHS[name]
    except KeyError:
        raise ValueError(f"unknown token source {name!r}; known: {[ORI, *PATHS]}") from None


def paths_for(methods) -> tuple[str, ...]:
    """The registered paths (besides ``"ori"``) that a list of method names needs, in registry order."""
    need = {get_method(m).tokens for m in methods}
    return tuple(p for p in PATHS if p in need)


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


# ------------------------------------------------------------------------------------------ the ten methods
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
_SEGEARTH = Source("Li et al., SegEarth-OV, CVPR 2025 (arXiv 2410.01768)", "github.com/likyoo/SegEarth-OV",
                   "3e22a969b32c6d751bdbba64a88a0b670e630f55")

for _p in (
    # CLIP Surgery's v-v path over the last `depth` blocks: residual kept, FFN skipped (clip_surgery_model.py:257-274)
    TokenPath("vv", attn_vv, "depth", residual=True, ffn=False),
    # Official MaskCLIP ViT: `v += x; v = ffn(norm2(v), identity=v)` (mmseg/models/backbones/vit.py:96-104)
    TokenPath("maskclip", attn_identity, "last", residual=True, ffn=True),
    # SCLIP: `x = x + custom_attn(...); x = x + mlp(ln_2(x))` on resblocks[-1:] (clip/model.py:249-251)
    TokenPath("sclip", attn_qq_kk, "last", residual=True, ffn=True),
    # ClearCLIP: ignore_residual=True, output = custom_attn only (open_clip/transformer.py:523-528)
    TokenPath("clearclip", attn_qq, "last", residual=False, ffn=False),
    # NACLIP arch='reduced': x = custom_attn(...) only (clip/model.py:115-119)
    TokenPath("naclip", attn_naclip, "last", residual=False, ffn=False),
    # GEM: x_gem = x_gem + ls_1(gem_out), no FFN, over the same last blocks as Surgery (gem_utils.py GEMResidualBlock)
    TokenPath("gem", attn_gem, "depth", residual=True, ffn=False),
    # SegEarth-OV model_type='SegEarth', ignore_residual=True (open_clip/transformer.py:526-535, 641-645)
    TokenPath("segearth", attn_qq_kk_vv, "last", residual=False, ffn=False),
):
    register_path(_p)

for _m in (
    Method("standard", ORI, "own", "cosine", "Plain CLIP: q-k tokens, cosine similarity (the seed's baseline).",
           _CLIP),
    Method("vv_qk", ORI, "own", "surgery", "q-k tokens with feature surgery: the effect of feature surgery alone.",
           _SURGERY),
    Method("vv_vv", "vv", "own", "surgery", "v-v path end to end (its own CLS) with feature surgery.", _SURGERY),
    Method("vv_mixed", "vv", "ori", "surgery",
           "Published CLIP Surgery: CLS from q-k, patches from v-v, feature surgery.", _SURGERY),
    Method("maskclip", "maskclip", "own", "cosine",
           "MaskCLIP (official ViT code): last block's attention = identity, residual and FFN kept; cosine.",
           _MASKCLIP),
    Method("sclip", "sclip", "own", "cosine",
           "SCLIP: last block softmax(qq^T)+softmax(kk^T) (summed), residual and FFN kept; cosine.", _SCLIP),
    Method("clearclip", "clearclip", "own", "cosine",
           "ClearCLIP: last block softmax(qq^T), no residual, no FFN; cosine.", _CLEARCLIP),
    Method("naclip", "naclip", "own", "cosine",
           "NACLIP: last block softmax(kk^T + Gaussian prior, sigma 5 patches), no residual, no FFN; cosine.",
           _NACLIP),
    Method("gem", "gem", "own", "cosine",
           "GEM: self-self attention (q, k, v normalised, one clustering step, adaptive temperature) on the "
           "surgery depth's blocks, residual kept, no FFN; cosine.", _GEM),
    Method("segearth_ov", "segearth", "own", "cls_bias",
           "SegEarth-OV without SimFeatUp (a trained upsampler): last block qq+kk+vv softmaxes, no residual, "
           "no FFN; cos(patch) - 0.3 cos(its CLS).", _SEGEARTH),
):
    register_method(_m)

#: The seed's four methods (what the dashboard's Compare page shows by default).
SEED_METHODS = ("standard", "vv_qk", "vv_vv", "vv_mixed")
#: Every registered method, in registry order (the order that fixes each method's colour).
DEFAULT_METHODS = tuple(METHODS)

# One colour per method, fixed by registry order, used by every chart of the dashboard and the HTML report, so
# that a method keeps its colour whichever subset is shown (the seed's four keep the colours they had).
METHOD_COLORS = ("#0b6bcb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#1098ad", "#d6336c", "#5c7cfa",
                 "#99582a", "#495057", "#94d82d", "#c92a2a")


def method_color(name: str) -> str:
    """Hex colour of a registered method (registry order); an unregistered name gets the last colour."""
    order = list(METHODS)
    i = order.index(name) if name in order else len(METHOD_COLORS) - 1
    return METHOD_COLORS[i % len(METHOD_COLORS)]
