"""What the methods' functions share: the context an attention variant reads, NACLIP's neighbourhood prior, one
attention row for the inspector, and the scoring rules several methods use (plain cosine, feature surgery).

Tensor layout of attention functions: ``q, k, v`` are ``[B, H, N, d_h]`` (CLS first, then the patch grid
row-major); they return ``A @ v`` per head, same shape, BEFORE ``out_proj`` (the loop applies ``out_proj``
once, so its bias is added once, whatever the number of softmaxes summed). Each method's own functions are in
its block of :mod:`surgery_core.model.methods` (or in whatever file registers it).

Torch-free at import (the registry, which the run configuration reads, holds these functions): torch is
imported when a function that needs its namespace is first called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class AttnContext:
    """What an attention variant may read besides ``q, k, v``, and the shared self-attentions of one block.

    h: the block's attention input ``ln_1(x)`` ``[B, N, D]`` (original path). grid: ``(gh, gw)`` patches.
    q, k, v: per-head ``[B, H, N, d_h]``. taps: ``(q_i, k_i)`` of the vanilla blocks the path reads
    (``TokenPath.reads``), in block order.
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
        import torch.nn.functional as F

        out = self._memo.get(which)
        if out is None:
            p = {"q": self.q, "k": self.k, "v": self.v}[which]
            out = self._memo[which] = F.scaled_dot_product_attention(p, p, self.v)
        return out


NACLIP_SIGMA = 5.0  # patches; sinahmr/NACLIP naclip.py gaussian_std=5. (test_all.sh: "reduced naclip 5 on")
_OMEGA_CACHE: dict[tuple, object] = {}


def naclip_omega(grid: tuple[int, int], sigma: float = NACLIP_SIGMA, device=None, dtype=None) -> torch.Tensor:
    """NACLIP's neighbourhood prior ``[1 + gh*gw, 1 + gh*gw]``: ``exp(-d^2 / (2 sigma^2))`` with ``d`` the
    distance in patches between two grid cells (row-major), peak 1 on the diagonal, zero on the CLS row and
    column (sinahmr/NACLIP @ 0cac3a6, clip/model.py gaussian_window + get_attention_addition,
    adjust_for_cls=True). Any grid shape; cached per (grid, sigma, device, dtype; default float32).

    >>> naclip_omega((2, 2))[1:, 1:].diagonal().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
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


def softmax_row(a: torch.Tensor, b: torch.Tensor, i: int, add: torch.Tensor | None = None) -> torch.Tensor:
    """Row ``i`` of ``softmax(a b^T s (+ add))`` per head, float32 ``[B, H, N]`` (``s = d_h ** -0.5``): one row of
    an attention map, for the inspector."""
    logits = (a[:, :, i:i + 1] @ b.transpose(-1, -2))[:, :, 0] * a.shape[-1] ** -0.5
    if add is not None:
        logits = logits + add
    return logits.float().softmax(dim=-1)


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
