"""The method registry: every training-free localisation method as data, read by one forward loop.

Plain data, no torch: the run configuration validates method names against it without loading a model.
The functions these records name (attention variants, scoring rules) live in :mod:`surgery_core.model.attention`.

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

Adding a method = one attention function (``attention.ATTENTION``), one ``register_path`` and one
``register_method``; the forward loop and the scoring loop never change. Unknown paths, methods or scorers raise ``KeyError``-free ``ValueError``s.

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    attention: str  # a key of attention.ATTENTION
    blocks: Literal["last", "depth"]
    residual: bool
    ffn: bool

    def n_blocks(self, depth: int, total: int) -> int:
        """How many final blocks this path replaces for a surgery ``depth`` in a tower of ``total`` blocks."""
        return min(depth, total) if self.blocks == "depth" else min(1, total)


@dataclass(frozen=True)
class Method:
    """A heatmap method. tokens: ``"ori"`` or a registered path; cls: ``"own"`` or ``"ori"`` (the CLS token
    that feature surgery or the CLS bias reads); scoring: one of ``SCORING_RULES``."""

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


# ------------------------------------------------------------------------------------------ registries
PATHS: dict[str, TokenPath] = {}
METHODS: dict[str, Method] = {}
ORI = "ori"  # the vanilla tower: always computed (class probabilities and every path read it)
#: Scoring rules a method may name (their functions: ``attention.SCORERS``).
SCORING_RULES = ("cosine", "surgery", "cls_bias")


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
    if method.scoring not in SCORING_RULES:
        raise ValueError(f"method {method.name!r}: unknown scoring {method.scoring!r}; known: {list(SCORING_RULES)}")
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
    TokenPath("vv", "vv", "depth", residual=True, ffn=False),
    # Official MaskCLIP ViT: `v += x; v = ffn(norm2(v), identity=v)` (mmseg/models/backbones/vit.py:96-104)
    TokenPath("maskclip", "identity", "last", residual=True, ffn=True),
    # SCLIP: `x = x + custom_attn(...); x = x + mlp(ln_2(x))` on resblocks[-1:] (clip/model.py:249-251)
    TokenPath("sclip", "qq_kk", "last", residual=True, ffn=True),
    # ClearCLIP: ignore_residual=True, output = custom_attn only (open_clip/transformer.py:523-528)
    TokenPath("clearclip", "qq", "last", residual=False, ffn=False),
    # NACLIP arch='reduced': x = custom_attn(...) only (clip/model.py:115-119)
    TokenPath("naclip", "naclip", "last", residual=False, ffn=False),
    # GEM: x_gem = x_gem + ls_1(gem_out), no FFN, over the same last blocks as Surgery (gem_utils.py GEMResidualBlock)
    TokenPath("gem", "gem", "depth", residual=True, ffn=False),
    # SegEarth-OV model_type='SegEarth', ignore_residual=True (open_clip/transformer.py:526-535, 641-645)
    TokenPath("segearth", "qq_kk_vv", "last", residual=False, ffn=False),
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
