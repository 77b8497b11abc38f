"""PAMR (pixel-adaptive mask refinement), the box option ``refine: pamr``, with NACLIP's settings.

Definition (Araslanov & Roth, CVPR 2020, visinf/1-stage-wseg models/mods/pamr.py; the copy NACLIP runs is
sinahmr/NACLIP @ 0cac3a6 pamr.py, called from naclip.py with ``pamr_steps=10, pamr_stride=(8, 16)``):

* for each dilation d, the 8 neighbours of a pixel at offsets ``{-d, 0, d}^2 minus (0, 0)``, image borders
  replicated; P = 8 x len(dilations) neighbours in all;
* affinity of pixel i to its neighbour j: ``-|I_i - I_j| / (1e-8 + 0.1 sigma_i)`` per image channel, with
  ``sigma_i`` the (unbiased) standard deviation of the channel over the 9 x len(dilations) values of the
  3x3 dilated windows (centre included once per dilation); averaged over channels, softmax over the P
  neighbours;
* ``iterations`` times: ``M_i <- sum_j a_ij M_j`` for every class map M (the centre is not a neighbour).

The affinity is invariant to a per-channel affine change of the image (differences and standard deviation
scale alike), so the image may be given as 0-1 RGB rather than model-normalised.

In this project the refinement runs on each class's raw grid upsampled bilinearly (half-pixel centres, as
NACLIP's ``align_corners=False``) to the model's input size, guided by the image squashed to that size (the
pixels the model saw); the refined map goes to box cutting in place of the grid (min-max, working map,
threshold). Heatmap-quality figures keep the raw grids.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAMR_ITERATIONS = 10
PAMR_DILATIONS = (8, 16)


def _neighbours(x: torch.Tensor, d: int, centre: bool) -> list[torch.Tensor]:
    """Shifted copies of ``x`` ``[B, C, H, W]`` at the dilated 3x3 offsets (replicate padding)."""
    h, w = x.shape[-2:]
    pad = F.pad(x, [d] * 4, mode="replicate")
    out = []
    for dy in (-d, 0, d):
        for dx in (-d, 0, d):
            if dy == 0 and dx == 0 and not centre:
                continue
            out.append(pad[..., d + dy:d + dy + h, d + dx:d + dx + w])
    return out


def pamr(image: torch.Tensor, maps: torch.Tensor, iterations: int = PAMR_ITERATIONS,
         dilations: tuple[int, ...] = PAMR_DILATIONS) -> torch.Tensor:
    """Refine class maps with image affinities.

    image: ``[B, C, H, W]`` float (any per-channel affine scaling). maps: ``[B, K, H, W]`` (same H, W) in any
    units (raw similarities here). Returns ``[B, K, H, W]``, each pixel a convex combination of neighbours.
    """
    if image.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"PAMR: image {tuple(image.shape[-2:])} and maps {tuple(maps.shape[-2:])} differ in size")
    image = image.float()
    maps = maps.float()
    windows = torch.stack([n for d in dilations for n in _neighbours(image, d, centre=True)], dim=2)
    sigma = windows.std(dim=2, keepdim=True)  # [B, C, 1, H, W]
    diffs = torch.stack([image - n for d in dilations for n in _neighbours(image, d, centre=False)], dim=2)
    aff = (-diffs.abs() / (1e-8 + 0.1 * sigma)).mean(dim=1)  # [B, P, H, W]
    aff = aff.softmax(dim=1).unsqueeze(1)  # [B, 1, P, H, W]
    for _ in range(iterations):
        nb = torch.stack([n for d in dilations for n in _neighbours(maps, d, centre=False)], dim=2)
        maps = (nb * aff).sum(dim=2)
    return maps


def refine_grid(grid: np.ndarray, image_rgb: np.ndarray, size: int) -> np.ndarray:
    """One image's raw ``[K, gh, gw]`` grid refined by PAMR at ``size x size`` px: float32 ``[K, size, size]``.

    image_rgb: the image squashed to ``size`` (uint8 ``[size, size, 3]``, as ``images.squash`` returns it).
    """
    g = torch.from_numpy(np.asarray(grid, np.float32))[None]
    up = F.interpolate(g, size=(size, size), mode="bilinear", align_corners=False)
    img = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None].float() / 255.0
    return pamr(img, up)[0].numpy()


def sweep_refined(grids, image_sizes, params, percentiles, load_image, size: int, *, pair_image=None,
                  pair_class=None, class_probs=None, image_ids=None, batch: int = 16) -> dict:
    """:func:`surgery_core.eval.cutting.detections_at` on PAMR-refined grids, ``batch`` images at a time (a refined map is
    ``size x size`` px per class: holding a whole run's would not fit). Same arguments and result;
    load_image(row) -> uint8 RGB image squashed to ``size``. Detections stay grouped by image in row order."""
    from surgery_core.data.detections import Detections
    from surgery_core.eval.cutting import detections_at

    n = len(grids)
    ids = np.arange(n, dtype=np.int64) if image_ids is None else np.asarray(image_ids, np.int64)
    probs = None if class_probs is None else np.asarray(class_probs)
    parts: dict[float, list] = {}
    for start in range(0, n, batch):
        rows = np.arange(start, min(start + batch, n))
        refined = [refine_grid(grids[r], load_image(int(r)), size) for r in rows]
        pairs = {}
        if pair_image is not None:
            keep = (pair_image >= start) & (pair_image < start + len(rows))
            pairs = dict(pair_image=pair_image[keep] - start, pair_class=pair_class[keep])
        got = detections_at(refined, np.asarray(image_sizes)[rows], params, percentiles,
                               class_probs=None if probs is None else probs[rows], image_ids=ids[rows],
                               workers=1, **pairs)
        for p, d in got.items():
            parts.setdefault(p, []).append(d)
    return {p: Detections.concat(ds) for p, ds in parts.items()} if parts else detections_at(
        grids, image_sizes, params, percentiles, pair_image=pair_image, pair_class=pair_class,
        class_probs=class_probs, image_ids=image_ids, workers=1)
