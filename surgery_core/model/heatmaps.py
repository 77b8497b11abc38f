"""Heatmaps of every registered method from one forward pass (docs/DESIGN.md section 3), as raw similarity
grids.

A grid is float32 ``[num_classes, grid_h, grid_w]`` per image: the similarity of each patch token to each
class BEFORE any min-max normalisation (``maps.py`` normalises and upsamples). The methods are records in
``methods.py`` that carry their attention and scoring functions; the image side (windows, tower passes) is
``encoder.py``; this module is the scoring step (:func:`score_tokens`) and the engine's entry point.

Public entry point for a batch of images: :func:`compute_heatmaps` (``loaded, images, classes, methods``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from surgery_core.model.encoder import (
    PassTokens,
    Resolution,
    image_tokens,
    merge_windows,
    resizes,
    token_needs,
    tower_passes,
)
from surgery_core.model.forward import TowerTokens
from surgery_core.model.loading import LoadedModel
from surgery_core.model.methods import DEFAULT_METHODS, ORI, Method, get_method
from surgery_core.model.prompts import DEFAULT_PROMPT_SET
from surgery_core.model.text import ensemble_text_features


def _tokens_for(toks, name: str) -> TowerTokens:
    return toks.for_method(name) if isinstance(toks, PassTokens) else toks


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

    toks: ``PassTokens`` (each method reads its rule's pass) or one pass's ``TowerTokens``.
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
    toks = toks.for_probs() if isinstance(toks, PassTokens) else toks
    cls = F.normalize(toks.tokens[ORI][:, 0].float(), dim=-1)
    return (logit_scale.exp().float() * cls @ text.t()).softmax(dim=-1)


@dataclass(frozen=True)
class HeatmapOutput:
    """Per batch: ``grids[method]`` float32 numpy ``[B, K, gh, gw]`` raw similarity, ``probs`` ``[B, K]``."""

    grids: dict[str, np.ndarray]
    probs: np.ndarray


def score_tokens(loaded: LoadedModel, toks: PassTokens, text: torch.Tensor, methods, resolution: Resolution | None,
                 redundant: torch.Tensor | None = None, probs: bool = True):
    """The scoring step: raw grids ``{method: [B, K, gh, gw]}`` and class probabilities ``[B, K]`` (None when not
    asked) of the images :func:`~surgery_core.model.encoder.image_tokens` encoded at ``resolution``: each
    method's scoring of its tokens, then, with windows, each window's grid added at its origin (overlapping
    cells averaged) and the probabilities averaged over windows. text ``[K, D]`` normalised, on the tokens'
    device; redundant: see :func:`similarity_grids`."""
    grids = similarity_grids(toks, text, methods, redundant)
    p = class_probabilities(toks, text, loaded.model.logit_scale.detach().to(text.device)) if probs else None
    if resolution is not None and resolution.window is not None:
        origins = resolution.origins()
        b = next(iter(toks.passes.values())).tokens[ORI].shape[0] // len(origins)
        grids = {name: merge_windows(g, origins, b, resolution.grid, resolution.patch) for name, g in grids.items()}
        p = None if p is None else p.view(len(origins), b, -1).mean(dim=0)
    return grids, p


@torch.no_grad()
def compute_heatmaps(loaded: LoadedModel, images: torch.Tensor, classes, methods=DEFAULT_METHODS,
                     depth: int = 6, resolution: Resolution | None = None,
                     prompt_set: str = DEFAULT_PROMPT_SET, query_mode: bool = False,
                     posembed: str = "official") -> HeatmapOutput:
    """The requested methods' raw grids and the class probabilities of a batch, from one pass of the tower per
    positional-embedding rule (one pass at the model's own grid): :func:`~surgery_core.model.encoder.image_tokens`
    then :func:`score_tokens`.

    methods: names of ``methods.METHODS`` (unknown names raise an error); only the token sources they need
    are computed. depth: surgery depth (final blocks of the v-v and GEM paths). posembed: ``"official"`` (each
    method's positional-embedding resize, ``Method.posembed``) or ``"shared"`` (one bicubic resize for all).

    images: ``[B, 3, S, S]`` normalised, on the model's device; S a multiple of the patch size. resolution: the
    input's :class:`~surgery_core.model.encoder.Resolution` (None: one pass over the images as they are); with
    a window, windows of ``window`` px slide with ``stride`` px and overlapping grid cells are averaged; class
    probabilities are averaged over windows. The positional embedding is resized to any crop whose grid is not
    the model's own.
    query_mode: single-text feature surgery for each name in ``classes`` (free-text queries) instead of
    class-set feature surgery.

    On the shipped demo model, one 224 px image (its own size: one pass, a 7x7 grid of 32 px patches):

    >>> from surgery_core.model.loading import load_model
    >>> loaded = load_model("Demo-ViT-32")
    >>> out = compute_heatmaps(loaded, torch.zeros(1, 3, 224, 224), ["ship", "airplane"], ("standard", "vv_mixed"),
    ...                        prompt_set="single")
    >>> out.grids["vv_mixed"].shape, out.probs.shape
    ((1, 2, 7, 7), (1, 2))
    >>> round(float(out.probs.sum()), 4)  # a softmax over the class set
    1.0
    """
    text = ensemble_text_features(loaded, classes, prompt_set)
    redundant = ensemble_text_features(loaded, [""], prompt_set) if query_mode else None
    crop = (resolution.crop,) * 2 if resolution is not None else tuple(images.shape[-2:])
    resize = resizes(loaded.model.visual, crop)
    toks = image_tokens(loaded, images, resolution, token_needs(methods, resize, posembed), depth, posembed)
    grids, probs = score_tokens(loaded, toks, text, methods, resolution, redundant)
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
                tower_passes(visual, x, token_needs(methods, resizes(visual, (size, size)), posembed), depth, posembed)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return int(counter.get_total_flops())
