"""The four heatmap types from one forward pass (DESIGN section 3), as raw similarity grids.

A grid is float32 ``[num_classes, grid_h, grid_w]`` per image: the similarity of each patch token to each
class BEFORE any min-max normalisation (``maps.py`` normalises and upsamples). Methods are registered by
name with a one-line description, so the CLI and the app list what the registry holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .models import LoadedModel, autocast_dtype
from .prompts import DEFAULT_PROMPT_SET, ensemble_text_features
from .surgery import SurgeryTokens, surgery_forward


@dataclass(frozen=True)
class Method:
    name: str
    tokens: str  # "ori" | "vv" | "mixed"
    surgery: bool  # feature surgery (True) or plain cosine (False)
    description: str


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"heatmap method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


for _m in (
    Method("standard", "ori", False, "Plain CLIP: q-k tokens, cosine similarity (the seed's baseline)."),
    Method("vv_qk", "ori", True, "q-k tokens with feature surgery: the effect of feature surgery alone."),
    Method("vv_vv", "vv", True, "v-v path end to end (its own CLS) with feature surgery."),
    Method("vv_mixed", "mixed", True, "Published CLIP Surgery: CLS from q-k, patches from v-v, feature surgery."),
):
    register_method(_m)
DEFAULT_METHODS = tuple(METHODS)


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


def _tokens_for(method: Method, toks: SurgeryTokens) -> torch.Tensor:
    t = {"ori": toks.ori, "vv": toks.vv}.get(method.tokens)
    return toks.mixed if t is None else t


def similarity_grids(toks: SurgeryTokens, text: torch.Tensor, methods=DEFAULT_METHODS,
                     redundant: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Raw similarity grids ``{method: [B, K, gh, gw]}`` (float32) from one pass's tokens.

    text ``[K, D]`` normalised. redundant: None for class-set mode, else the empty-string feature ``[1, D]``
    for single-text mode.
    """
    gh, gw = toks.grid
    out = {}
    for name in methods:
        m = METHODS[name]
        tokens = F.normalize(_tokens_for(m, toks).float(), dim=-1)
        if not m.surgery:
            sim = tokens @ text.t()
        elif redundant is None:
            sim = feature_surgery(tokens, text)
        else:
            sim = single_text_surgery(tokens, text, redundant)
        b, _, k = sim.shape
        out[name] = sim[:, 1:].transpose(1, 2).reshape(b, k, gh, gw)
    return out


def class_probabilities(toks: SurgeryTokens, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` image-level class probabilities: softmax over the class set of the scaled cosine between
    the q-k CLS token (what ``encode_image`` returns) and each class's text feature."""
    cls = F.normalize(toks.ori[:, 0].float(), dim=-1)
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


@torch.no_grad()
def compute_heatmaps(loaded: LoadedModel, images: torch.Tensor, classes, methods=DEFAULT_METHODS,
                     depth: int = 6, window: int | None = None, stride: int | None = None,
                     prompt_set: str = DEFAULT_PROMPT_SET, query_mode: bool = False) -> HeatmapOutput:
    """All requested heatmap grids and class probabilities for a batch, from one dual-path pass.

    images: ``[B, 3, S, S]`` normalised, on the model's device; S a multiple of the patch size. When S is
    larger than the model's input size and ``window`` is set, windows of ``window`` px slide with
    ``stride`` px (multiples of the patch size) and overlapping grid cells are averaged; class
    probabilities are averaged over windows. Otherwise the positional embedding is interpolated to S.
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
            raise ValueError(f"window {window} and stride {stride} must be multiples of the patch size {patch}")
        origins = [(y, x) for y in window_origins(h, window, stride) for x in window_origins(w, window, stride)]
        crops = torch.cat([images[:, :, y:y + window, x:x + window] for y, x in origins])
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        toks = surgery_forward(loaded.model.visual, crops, depth)
    grids = similarity_grids(toks, text, methods, redundant)
    probs = class_probabilities(toks, text, loaded.model.logit_scale)
    if len(origins) > 1:
        gh, gw = h // patch, w // patch
        merged = {}
        for name, g in grids.items():
            acc = g.new_zeros(b, g.shape[1], gh, gw)
            count = g.new_zeros(1, 1, gh, gw)
            wg = window // patch
            for i, (y, x) in enumerate(origins):
                acc[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += g[i * b:(i + 1) * b]
                count[:, :, y // patch:y // patch + wg, x // patch:x // patch + wg] += 1
            merged[name] = acc / count
        grids = merged
        probs = probs.view(len(origins), b, -1).mean(dim=0)
    return HeatmapOutput({k: v.float().cpu().numpy() for k, v in grids.items()}, probs.float().cpu().numpy())
