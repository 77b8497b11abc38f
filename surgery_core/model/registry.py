"""The method registry's records: what a training-free localisation method is, as data that carries its behaviour.

Torch-free at import: the run configuration validates method names against :data:`METHODS` without loading a
model. The records hold the method's functions (attention variant, scoring rule, inspector rows); those import
torch when they are first called. The built-in methods are defined in :mod:`surgery_core.model.methods`, one
block each; a method from anywhere else is one :func:`register_path` and one :func:`register_method` call
(docs/DESIGN.md, "Adding a method").

* :class:`TokenPath`: a *token source* besides the vanilla tower (``"ori"``): an attention variant (a function
  of the per-head ``q, k, v`` of the ORIGINAL path's block input and an ``AttnContext``) plus flags: how many
  final blocks it replaces (``"last"`` = 1, ``"depth"`` = the run's surgery depth), whether it keeps the
  residual, whether it runs the FFN. Every path reads the same ``q, k, v`` as the vanilla block, so one pass of
  the tower serves all of them (``forward.tower_forward``). A ``"tail"`` path is computed after the tower from
  its block outputs (SC-CLIP).
* :class:`Method`: a named heatmap: which path's patch tokens, where the CLS comes from (the path's own, or the
  vanilla one), its scoring function (plain cosine, CLIP Surgery's feature surgery, SegEarth-OV's CLS bias...),
  a one-line description, its source (paper, official repository, commit read), its positional-embedding rule
  and a definition version that goes into the run-store key (bump it when a definition changes).

Unknown paths, methods or rules raise ``ValueError`` naming what is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

#: An attention variant: ``(q, k, v, ctx) -> A @ v`` per head, ``[B, H, N, d_h]`` (``model.attention``).
AttentionFn = Callable
#: A scoring rule: ``(tokens [B, N, D], text [K, D], redundant [1, D] or None) -> [B, N, K]``, both L2-normalised.
ScoringFn = Callable


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
    """A token source computed alongside the vanilla tower (see module docstring).

    attention: ``(q, k, v, ctx) -> A @ v`` per head, before ``out_proj``; for ``blocks="tail"``,
    ``(visual, hidden, grid) -> [B, gh*gw, D]`` patch tokens from the vanilla block outputs ``hidden``.
    reads: the vanilla blocks it reads for a tower of ``total`` blocks: their ``(q, k)`` (``ctx.taps``) for an
    attention path, their outputs (``hidden``) for a tail path; None = none.
    rows: the inspector's ``(q, k, v, ctx, i) -> [B, H, N]``, query token ``i``'s row of ``A`` divided by
    ``row_mass`` (what its rows sum to) so that it sums to one; None for a tail path (no per-block attention).
    """

    name: str
    attention: AttentionFn
    blocks: Literal["last", "depth", "tail"]
    residual: bool
    ffn: bool
    reads: Callable[[int], tuple[int, ...]] | None = None
    rows: Callable | None = None
    row_mass: float = 1.0

    def n_blocks(self, depth: int, total: int) -> int:
        """How many final blocks this path replaces for a surgery ``depth`` in a tower of ``total`` blocks."""
        if self.blocks == "tail":
            return 0
        return min(depth, total) if self.blocks == "depth" else min(1, total)

    def read_blocks(self, total: int) -> tuple[int, ...]:
        """:attr:`reads` for a tower of ``total`` blocks (empty when it reads none)."""
        return tuple(self.reads(total)) if self.reads is not None else ()


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
    that feature surgery or the CLS bias reads); scoring: its :data:`ScoringFn`; posembed: the
    positional-embedding resize of its official code (a key of ``POSEMBED_RULES``), used when the input's grid
    is not the model's own."""

    name: str
    tokens: str
    cls: Literal["own", "ori"]
    scoring: ScoringFn
    description: str
    source: Source
    version: int = 1
    posembed: str = "bicubic_size"

    @property
    def scoring_name(self) -> str:
        """The scoring function's name, for listings (``cosine``, ``surgery``, ``cls_bias``...)."""
        return getattr(self.scoring, "__name__", repr(self.scoring)).removeprefix("score_")

    @property
    def store_name(self) -> str:
        """Name of this method's grids in the run store: name and definition version."""
        return f"{self.name}@v{self.version}"


# ------------------------------------------------------------------------------------------ registries
PATHS: dict[str, TokenPath] = {}
METHODS: dict[str, Method] = {}
POSEMBED_RULES: dict[str, PosEmbedRule] = {}
ORI = "ori"  # the vanilla tower: always computed (class probabilities and every path read it)
#: The method whose CLS token gives the image-level class probabilities (``encode_image``'s), and so whose
#: positional-embedding rule they are computed with.
PROBS_METHOD = "standard"


def register_path(path: TokenPath) -> TokenPath:
    """Add a token source; ValueError for a taken name, a bad ``blocks`` or a non-callable function."""
    if path.name in PATHS or path.name == ORI:
        raise ValueError(f"token source {path.name!r} is already registered")
    if path.blocks not in ("last", "depth", "tail"):
        raise ValueError(f"token source {path.name!r}: blocks must be 'last', 'depth' or 'tail', got {path.blocks!r}")
    for what in ("attention", "reads", "rows"):
        fn = getattr(path, what)
        if not callable(fn) and not (fn is None and what != "attention"):
            raise ValueError(f"token source {path.name!r}: {what} must be a function, got {fn!r}")
    PATHS[path.name] = path
    return path


def register_method(method: Method) -> Method:
    """Add a method (its path registered first); ValueError naming what is wrong or already registered."""
    if method.name in METHODS:
        raise ValueError(f"heatmap method {method.name!r} is already registered")
    if method.tokens != ORI and method.tokens not in PATHS:
        raise ValueError(f"method {method.name!r}: unknown token source {method.tokens!r}; "
                         f"known: {[ORI, *PATHS]}")
    if method.cls not in ("own", "ori"):
        raise ValueError(f"method {method.name!r}: cls must be 'own' or 'ori', got {method.cls!r}")
    if not callable(method.scoring):
        raise ValueError(f"method {method.name!r}: scoring must be a function (tokens, text, redundant), "
                         f"got {method.scoring!r}")
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


def unregister_method(name: str) -> None:
    """Remove a method and, when no other method reads it, its token path (a throwaway method of a test or a
    notebook); the built-in methods stay."""
    m = METHODS.pop(name, None)
    if m is not None and m.tokens != ORI and all(o.tokens != m.tokens for o in METHODS.values()):
        PATHS.pop(m.tokens, None)


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


# One colour per method, fixed by registry order, used by every chart of the dashboard and the HTML report, so
# that a method keeps its colour whichever subset is shown (the seed's four keep the colours they had).
METHOD_COLORS = ("#0b6bcb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#1098ad", "#d6336c", "#5c7cfa",
                 "#99582a", "#495057", "#94d82d", "#c92a2a")


def method_color(name: str) -> str:
    """Hex colour of a registered method (registry order); an unregistered name gets the last colour."""
    order = list(METHODS)
    i = order.index(name) if name in order else len(METHOD_COLORS) - 1
    return METHOD_COLORS[i % len(METHOD_COLORS)]
