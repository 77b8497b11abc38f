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
    attention: str  # a key of attention.ATTENTION (or, for blocks="tail", of multilayer.TAILS)
    blocks: Literal["last", "depth", "tail"]  # tail: computed after the tower from its intermediate outputs
    residual: bool
    ffn: bool

    def n_blocks(self, depth: int, total: int) -> int:
        """How many final blocks this path replaces for a surgery ``depth`` in a tower of ``total`` blocks."""
        if self.blocks == "tail":
            return 0
        return min(depth, total) if self.blocks == "depth" else min(1, total)


#: Block count of the towers the official ResCLIP and SC-CLIP configurations were written for (ViT-B/16).
OFFICIAL_TOWER_BLOCKS = 12


def official_layers(indices, total: int) -> tuple[int, ...]:
    """Block indices (0-based) of an official configuration written for a 12-block tower, in a tower of ``total``
    blocks: unchanged with 12 blocks or more (the official code uses them as they are on any tower); on a
    shallower tower (the demo model's 4 blocks) scaled ``i * total // 12`` and kept below the last block,
    repeats dropped. That scaling is this project's, not an official configuration."""
    if total >= OFFICIAL_TOWER_BLOCKS:
        return tuple(indices)
    return tuple(dict.fromkeys(min(i * total // OFFICIAL_TOWER_BLOCKS, max(total - 2, 0)) for i in indices))


@dataclass(frozen=True)
class PosEmbedRule:
    """How a method's official code resizes CLIP's positional embedding to a grid other than the model's own
    (``forward.POSEMBED_RESIZE`` holds the torch function of each rule). cite: repository @ commit, file:lines."""

    name: str
    description: str
    cite: str


@dataclass(frozen=True)
class Method:
    """A heatmap method. tokens: ``"ori"`` or a registered path; cls: ``"own"`` or ``"ori"`` (the CLS token
    that feature surgery or the CLS bias reads); scoring: one of ``SCORING_RULES``; posembed: the
    positional-embedding resize of its official code (a key of ``POSEMBED_RULES``), used when the input's grid
    is not the model's own."""

    name: str
    tokens: str
    cls: Literal["own", "ori"]
    scoring: str
    description: str
    source: Source
    version: int = 1
    posembed: str = "bicubic_size"

    @property
    def store_name(self) -> str:
        """Name of this method's grids in the run store: name and definition version."""
        return f"{self.name}@v{self.version}"


# ------------------------------------------------------------------------------------------ registries
PATHS: dict[str, TokenPath] = {}
METHODS: dict[str, Method] = {}
POSEMBED_RULES: dict[str, PosEmbedRule] = {}
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
    if method.posembed not in POSEMBED_RULES:
        raise ValueError(f"method {method.name!r}: unknown positional-embedding rule {method.posembed!r}; "
                         f"known: {list(POSEMBED_RULES)}")
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


def register_posembed(rule: PosEmbedRule) -> PosEmbedRule:
    if rule.name in POSEMBED_RULES:
        raise ValueError(f"positional-embedding rule {rule.name!r} is already registered")
    POSEMBED_RULES[rule.name] = rule
    return rule


# ------------------------------------------------------------------------------------------ positional embedding
#: ``posembed`` run settings: each method's official resize (one tower pass per distinct rule the run's
#: methods name), or the project's single bicubic resize for every method (one pass, faster, not official).
POSEMBED_MODES = {
    "official": "positional embedding resized as each method's official code does (one tower pass per rule)",
    "shared": "positional embedding resized once, bicubic by size, for every method (one pass; NOT each "
              "method's official resize)",
}
#: The rule of ``posembed: shared`` (what every method used before the rules were told apart).
SHARED_RULE = "bicubic_size"

for _r in (
    PosEmbedRule("bicubic_size", "bicubic to the grid's size (align_corners=False), CLS row kept",
                 "chongzhou96/MaskCLIP @ 245d31f mmseg/models/backbones/vit.py:383-410 (interpolate_mode "
                 "'bicubic', line 185)"),
    PosEmbedRule("bilinear_size", "bilinear to the grid's size (align_corners=False), CLS row kept; resized from "
                 "the model's own grid each time (the official code overwrites its embedding, so a second size "
                 "would be resized from the first)",
                 "xmed-lab/CLIP_Surgery @ d4696d4 clip/clip_surgery_model.py:337-341"),
    PosEmbedRule("bicubic_scale", "bicubic by scale factor ((g + 0.1) / g0 per axis, output floor(g + 0.1) = g "
                 "cells, source coordinates from the factor, not the size), CLS row kept",
                 "wangf3014/SCLIP @ b56bd30 clip/model.py:263-281; sinahmr/NACLIP @ 0cac3a6 clip/model.py:134-151; "
                 "mc-lan/ClearCLIP @ ad68a40 open_clip/transformer.py:569-587; likyoo/SegEarth-OV @ 3e22a96 "
                 "open_clip/transformer.py:571-589; yvhangyang/ResCLIP @ 0e085f7 clip/model.py:377-394; "
                 "SuleBai/SC-CLIP @ 0417ba9 clip/model.py:375-393"),
    PosEmbedRule("bicubic_antialias", "bicubic to the grid's size with antialias=True (torch's separable "
                 "antialiased kernel, a = -0.5), CLS row kept",
                 "WalBouss/GEM @ 5fa677c gem/gem_utils.py:36 (resample_abs_pos_embed, called at 166-171)"),
):
    register_posembed(_r)


def posembed_words(posembed: str, resize: bool) -> str:
    """How the positional embedding was resized, in words for captions: ``positional embedding: each method's
    official resize`` / ``...: one shared bicubic resize (not official)``; at the model's own grid, none."""
    if not resize:
        return "positional embedding: the model's own (no resize)"
    if posembed == "shared":
        return "positional embedding: one shared bicubic resize for every method (posembed shared, not official)"
    return "positional embedding: each method's official resize (posembed official)"


def method_rule(name: str, resize: bool, posembed: str = "official") -> str:
    """The positional-embedding rule of the pass a method reads: its own with ``posembed="official"`` when the
    input grid is not the model's own (``resize``), else :data:`SHARED_RULE` (one pass serves all)."""
    if posembed not in POSEMBED_MODES:
        raise ValueError(f"posembed {posembed!r}: one of {list(POSEMBED_MODES)}")
    return get_method(name).posembed if resize and posembed == "official" else SHARED_RULE


def probs_rule(resize: bool, posembed: str = "official") -> str:
    """The rule of the pass whose vanilla CLS gives the class probabilities (:data:`PROBS_METHOD`'s)."""
    return method_rule(PROBS_METHOD, resize, posembed)


def pass_plan(methods, resize: bool, posembed: str = "official") -> dict[str, tuple[str, ...]]:
    """The tower passes a set of methods needs: ``{rule: methods computed in that pass}``, in rule order.

    resize: whether the input grid differs from the model's own (at the model's own grid no rule applies:
    one pass, whatever ``posembed``). posembed: ``"official"`` (one pass per distinct rule of ``methods``) or
    ``"shared"`` (one pass, :data:`SHARED_RULE`). The class probabilities come from the vanilla CLS of the
    pass of :data:`PROBS_METHOD`'s rule, so that rule is always planned (with no methods when none of
    ``methods`` uses it: a vanilla-only pass).
    """
    groups: dict[str, list[str]] = {probs_rule(resize, posembed): []}
    for m in methods:
        groups.setdefault(method_rule(m, resize, posembed), []).append(m)
    return {r: tuple(groups[r]) for r in POSEMBED_RULES if r in groups}


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
_RESCLIP = Source("Yang, Deng, Li, Duan, ResCLIP, CVPR 2025 (arXiv 2411.15851)", "github.com/yvhangyang/ResCLIP",
                  "0e085f7f52f06098b383599e9653cd28cc665a8c")
_SCCLIP = Source("Bai et al., Self-Calibrated CLIP (SC-CLIP), arXiv 2411.15869", "github.com/SuleBai/SC-CLIP",
                 "0417ba92851e9dd7432d608f10a0804d01a23062")
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
    # ResCLIP arch='wo_resi': x = custom_attn(...) only (clip/model.py:356-360); RCS reads blocks 5-8's attention
    TokenPath("resclip", "resclip", "last", residual=False, ffn=False),
    # SC-CLIP: computed after the tower from its block outputs and the last block's weights (multilayer.py)
    TokenPath("scclip", "scclip", "tail", residual=False, ffn=False),
):
    register_path(_p)

for _m in (
    Method("standard", ORI, "own", "cosine", "Plain CLIP: q-k tokens, cosine similarity (the seed's baseline).",
           _CLIP, posembed="bilinear_size"),
    Method("vv_qk", ORI, "own", "surgery", "q-k tokens with feature surgery: the effect of feature surgery alone.",
           _SURGERY, posembed="bilinear_size"),
    Method("vv_vv", "vv", "own", "surgery", "v-v path end to end (its own CLS) with feature surgery.", _SURGERY,
           posembed="bilinear_size"),
    Method("vv_mixed", "vv", "ori", "surgery",
           "Published CLIP Surgery: CLS from q-k, patches from v-v, feature surgery.", _SURGERY,
           posembed="bilinear_size"),
    Method("maskclip", "maskclip", "own", "cosine",
           "MaskCLIP (official ViT code): last block's attention = identity, residual and FFN kept; cosine.",
           _MASKCLIP, posembed="bicubic_size"),
    Method("sclip", "sclip", "own", "cosine",
           "SCLIP: last block softmax(qq^T)+softmax(kk^T) (summed), residual and FFN kept; cosine.", _SCLIP,
           posembed="bicubic_scale"),
    Method("clearclip", "clearclip", "own", "cosine",
           "ClearCLIP: last block softmax(qq^T), no residual, no FFN; cosine.", _CLEARCLIP, posembed="bicubic_scale"),
    Method("naclip", "naclip", "own", "cosine",
           "NACLIP: last block softmax(kk^T + Gaussian prior, sigma 5 patches), no residual, no FFN; cosine.",
           _NACLIP, posembed="bicubic_scale"),
    Method("gem", "gem", "own", "cosine",
           "GEM: self-self attention (q, k, v normalised, one clustering step, adaptive temperature) on the "
           "surgery depth's blocks, residual kept, no FFN; cosine.", _GEM, posembed="bicubic_antialias"),
    Method("segearth_ov", "segearth", "own", "cls_bias",
           "SegEarth-OV without SimFeatUp (a trained upsampler): last block qq+kk+vv softmaxes, no residual, "
           "no FFN; cos(patch) - 0.3 cos(its CLS).", _SEGEARTH, posembed="bicubic_scale"),
    Method("resclip", "resclip", "own", "cosine",
           "ResCLIP, RCS only: last block tau[(1-lambda) softmax(kk^T + NACLIP prior) + lambda mean of blocks 6-9's "
           "q-k attention] (tau 2, lambda 0.3), no residual, no FFN; cosine. Without SFR (semantic feedback "
           "refinement: a second last-block pass scored against the class texts and refined by PAMR).",
           _RESCLIP, posembed="bicubic_scale"),
    Method("scclip", "scclip", "ori", "cosine",
           "SC-CLIP, all of it (one pass, CLIP alone): LOF anomaly-token repair before the last block, its attention "
           "guided by block 8's feature similarities, 0.3 CLS, aggregation over similar patches (blocks 8, 3), "
           "blocks 3-9 fused through the last block; cosine (no CLS of its own: the vanilla one).",
           _SCCLIP, posembed="bicubic_scale"),
):
    register_method(_m)

#: The method whose CLS token gives the image-level class probabilities (``encode_image``'s), and so whose
#: positional-embedding rule they are computed with.
PROBS_METHOD = "standard"
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
