"""Heatmaps of every registered method from one forward pass (docs/DESIGN.md section 3), as raw similarity
grids.

A grid is float32 ``[num_classes, grid_h, grid_w]`` per image: the similarity of each patch token to each
class BEFORE any min-max normalisation (``maps.py`` normalises and upsamples). The methods themselves are
data in ``methods.py`` (registry: token source, CLS source, scoring, description, source); this module only
scores tokens and handles sliding windows.

Public entry point for a batch of images: :func:`compute_heatmaps` (``loaded, images, classes, methods``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from surgery_core.errors import InputError
from surgery_core.model.forward import SurgeryTokens, TowerTokens, patchify, tower_forward
from surgery_core.model.loading import LoadedModel, autocast_dtype
from surgery_core.model.methods import (
    DEFAULT_METHODS,
    ORI,
    Method,
    get_method,
    method_rule,
    pass_plan,
    paths_for,
    probs_rule,
)
from surgery_core.model.prompts import DEFAULT_PROMPT_SET
from surgery_core.model.text import ensemble_text_features


@dataclass(frozen=True)
class PassTokens:
    """The tower passes of one batch, one per positional-embedding rule (``methods.pass_plan``):
    ``passes[rule]`` holds the vanilla tokens and the paths of the methods of that rule. resize: whether the
    input grid differs from the model's own; posembed: ``"official"`` or ``"shared"``. Which pass a method
    (and the class probabilities) reads follows from these (``methods.method_rule``)."""

    passes: dict[str, TowerTokens]
    resize: bool
    posembed: str

    @property
    def grid(self) -> tuple[int, int]:
        return next(iter(self.passes.values())).grid

    def for_method(self, name: str) -> TowerTokens:
        rule = method_rule(name, self.resize, self.posembed)
        if rule not in self.passes:
            raise ValueError(f"method {name!r} reads the {rule} pass, which was not computed "
                             f"(computed: {list(self.passes)})")
        return self.passes[rule]

    def for_probs(self) -> TowerTokens:
        return self.passes[probs_rule(self.resize, self.posembed)]


def resizes(visual, crop_hw: tuple[int, int]) -> bool:
    """Whether crops of ``crop_hw`` px give the tower a grid other than its own (the positional embedding is
    then resized, by each method's rule)."""
    ph, pw = visual.patch_size
    return (crop_hw[0] // ph, crop_hw[1] // pw) != tuple(visual.grid_size)


def run_passes(visual, crops: torch.Tensor, methods, depth: int = 6, posembed: str = "official") -> PassTokens:
    """One tower pass per positional-embedding rule that ``methods`` need at this crop size (one pass at the
    model's own grid, or with ``posembed="shared"``); the patch embedding of the crops is computed once and
    shared by every pass."""
    resize = resizes(visual, tuple(crops.shape[-2:]))
    plan = pass_plan(methods, resize, posembed)
    patches = patchify(visual, crops)
    passes = {rule: tower_forward(visual, crops, paths_for(ms), depth, rule, patches) for rule, ms in plan.items()}
    return PassTokens(passes, resize, posembed)


def _as_tower(toks) -> TowerTokens:
    if isinstance(toks, SurgeryTokens):
        return TowerTokens({ORI: toks.ori, "vv": toks.vv}, toks.grid)
    return toks


def _tokens_for(toks, name: str) -> TowerTokens:
    return toks.for_method(name) if isinstance(toks, PassTokens) else _as_tower(toks)


def method_tokens(method: Method, toks: TowerTokens) -> torch.Tensor:
    """The ``[B, 1 + N, D]`` tokens a method scores: its path's patches, CLS from the path or from ``ori``."""
    if method.tokens not in toks.tokens:
        raise ValueError(f"method {method.name!r} needs token source {method.tokens!r}, which this pass did "
                         f"not compute (computed: {list(toks.tokens)})")
    t = toks.tokens[method.tokens]
    if method.cls == "ori" and method.tokens != ORI:
        t = torch.cat([toks.tokens[ORI][:, :1], t[:, 1:]], dim=1)
    return t


def similarity_grids(toks, text: torch.Tensor, methods=DEFAULT_METHODS,
                     redundant: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Raw similarity grids ``{method: [B, K, gh, gw]}`` (float32) from one pass's tokens.

    toks: ``PassTokens`` (each method reads its rule's pass), ``TowerTokens`` (or the seed's ``SurgeryTokens``).
    text ``[K, D]`` normalised. redundant: None for class-set mode, else the empty-string feature ``[1, D]`` for
    single-text mode.
    """
    gh, gw = toks.grid
    out = {}
    for name in methods:
        m = get_method(name)
        tokens = F.normalize(method_tokens(m, _tokens_for(toks, name)).float(), dim=-1)
        sim = m.scoring(tokens, text, redundant)
        b, _, k = sim.shape
        out[name] = sim[:, 1:].transpose(1, 2).reshape(b, k, gh, gw)
    return out


def class_probabilities(toks, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` image-level class probabilities: softmax over the class set of the scaled cosine between
    the q-k CLS token (what ``encode_image`` returns) and each class's text feature."""
    toks = toks.for_probs() if isinstance(toks, PassTokens) else _as_tower(toks)
    cls = F.normalize(toks.tokens[ORI][:, 0].float(), dim=-1)
    return (logit_scale.exp().float() * cls @ text.t()).softmax(dim=-1)


@dataclass(frozen=True)
class HeatmapOutput:
    """Per batch: ``grids[method]`` float32 numpy ``[B, K, gh, gw]`` raw similarity, ``probs`` ``[B, K]``."""

    grids: dict[str, np.ndarray]
    probs: np.ndarray


def window_origins(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets (pixels) of sliding windows along one axis, the last flush with the far edge."""
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def merge_windows(grids: torch.Tensor, origins: list[tuple[int, int]], batch: int, grid: tuple[int, int],
                  patch: int) -> torch.Tensor:
    """Window grids ``[len(origins) * batch, K, wg, wg]`` (window-major, as the crops were stacked) to full grids
    ``[batch, K, gh, gw]``: each window added at its origin (px, multiples of ``patch``), overlapping cells
    averaged."""
    wg = grids.shape[-1]
    acc = grids.new_zeros(batch, grids.shape[1], *grid)
    count = grids.new_zeros(1, 1, *grid)
    for i, (y, x) in enumerate(origins):
        acc[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += grids[i * batch:(i + 1) * batch]
        count[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += 1
    return acc / count


@torch.no_grad()
def compute_heatmaps(loaded: LoadedModel, images: torch.Tensor, classes, methods=DEFAULT_METHODS,
                     depth: int = 6, window: int | None = None, stride: int | None = None,
                     prompt_set: str = DEFAULT_PROMPT_SET, query_mode: bool = False,
                     posembed: str = "official") -> HeatmapOutput:
    """The requested methods' raw grids and the class probabilities of a batch, from one pass of the tower per
    positional-embedding rule (one pass at the model's own grid).

    methods: names of ``methods.METHODS`` (unknown names raise ValueError); only the token sources they need
    are computed. depth: surgery depth (final blocks of the v-v and GEM paths). posembed: ``"official"`` (each
    method's positional-embedding resize, ``Method.posembed``) or ``"shared"`` (one bicubic resize for all).

    images: ``[B, 3, S, S]`` normalised, on the model's device; S a multiple of the patch size. When S is
    larger than the model's input size and ``window`` is set, windows of ``window`` px slide with
    ``stride`` px (multiples of the patch size) and overlapping grid cells are averaged; class
    probabilities are averaged over windows. The positional embedding is resized to any crop whose grid is not
    the model's own.
    query_mode: single-text feature surgery for each name in ``classes`` (free-text queries) instead of
    class-set feature surgery.
    """
    text = ensemble_text_features(loaded, classes, prompt_set)
    redundant = ensemble_text_features(loaded, [""], prompt_set) if query_mode else None
    dtype = autocast_dtype(images.device)
    b, _, h, w = images.shape
    patch = loaded.patch_size
    if window is None or window >= max(h, w):
        crops, origins = images, [(0, 0)]
    else:
        stride = stride or window
        if window % patch or stride % patch:
            raise InputError(None, f"sliding window {window} px and stride {stride} px must be multiples of the "
                                   f"model's patch size {patch} px (e.g. window {max(patch, window // patch * patch)})")
        origins = [(y, x) for y in window_origins(h, window, stride) for x in window_origins(w, window, stride)]
        crops = torch.cat([images[:, :, y:y + window, x:x + window] for y, x in origins])
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        toks = run_passes(loaded.model.visual, crops, methods, depth, posembed)
    grids = similarity_grids(toks, text, methods, redundant)
    probs = class_probabilities(toks, text, loaded.model.logit_scale)
    if len(origins) > 1:
        grids = {name: merge_windows(g, origins, b, (h // patch, w // patch), patch) for name, g in grids.items()}
        probs = probs.view(len(origins), b, -1).mean(dim=0)
    return _to_host(grids, probs)


def _to_host(grids: dict[str, torch.Tensor], probs: torch.Tensor) -> HeatmapOutput:
    """Every grid and the probabilities reach the host in ONE copy (one synchronisation per batch on a GPU),
    then are split into per-method arrays (contiguous, the same float32 values)."""
    b = probs.shape[0]
    names = list(grids)
    flat = torch.cat([grids[n].float().reshape(b, -1) for n in names] + [probs.float().reshape(b, -1)], dim=1)
    host = flat.cpu().numpy()
    out, at = {}, 0
    for n in names:
        size = grids[n][0].numel()
        out[n] = np.ascontiguousarray(host[:, at:at + size]).reshape(grids[n].shape)
        at += size
    return HeatmapOutput(out, np.ascontiguousarray(host[:, at:]))



def _sdpa_cpu_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU fused attention (torch's counter has no formula for it): QK^T and AV products."""
    b, h, s_q, d = q
    return 2 * b * h * s_q * k[2] * d + 2 * b * h * s_q * k[2] * v[3]


@torch.no_grad()
def pass_flops(visual, methods, size: int, depth: int = 6, posembed: str = "official") -> int:
    """Matrix-product FLOPs of one ``size`` px image through the tower passes computing ``methods`` (``None`` =
    vanilla ``encode_image``'s tower; one pass per positional-embedding rule off the model's own size).
    Deterministic and machine independent (element-wise ops not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, size, size, device=next(visual.parameters()).device)
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    # nn.MultiheadAttention's fused inference path hides its products from the counter: count the plain path.
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            if methods is None:
                visual(x)
            else:
                run_passes(visual, x, methods, depth, posembed)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return int(counter.get_total_flops())
