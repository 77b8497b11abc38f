"""SC-CLIP's token path, computed after the tower from its intermediate outputs (a "tail" ``TokenPath``).

SC-CLIP (SuleBai/SC-CLIP @ 0417ba9, clip/model.py:208-373, configs/base_config.py) runs on CLIP alone, in the
same pass as every other method: it reads the vanilla tower's block outputs and the last block's weights.

- Anomaly-token repair: the patch tokens entering the last block (block L-2's output) whose Local Outlier Factor
  (30 neighbours, squared Euclidean distances, contamination 0.05, ``lof_pytorch`` 208-227) is above the 95 %
  quantile are replaced by the mean of their non-outlier 3x3 neighbours (``mean_interpolation`` 348-373). The
  CLS token is set aside (re-added at 0.3, ``res_cls``).
- Attention guided by intermediate features: cosine similarities of block 8's patch tokens (repaired the same
  way), ``mid_simi``; the last block's attention is ``[softmax(3 (mid - mean(mid)), negatives masked) +
  softmax(k k^T s)] / 2`` (``custom_attn`` 318-341), its output taken without residual or FFN, plus 0.3 CLS.
- Feature aggregation: tokens are averaged over neighbours of cosine >= 0.4 (``adaptively_aggregate`` 343-346)
  with block 8's similarities before the last block and block 3's after it.
- Multi-level fusion: the sum of blocks 3-9's outputs goes through the same last-block attention (+ 0.3 of its
  CLS), is aggregated with block 3's similarities and added (268-306).

The output has no CLS token (patches only); the registry's method takes the vanilla CLS (``cls="ori"``), which
cosine scoring does not read. One image at a time, as the official code runs (``lof_pytorch`` squeezes a batch
of one; ``mid_simi``'s mean is over the image). Deviations, for inputs the official code does not take: fewer
than 31 patches use ``n - 1`` neighbours; outliers are located row-major by the grid's width (the official
``index // feat_w`` divides by the height: the same on the square grids it runs on); towers of fewer than 12
blocks map the block indices with ``methods.official_layers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from surgery_core.model.methods import official_layers

SCCLIP_PRE, SCCLIP_POST = 8, 3  # pre_adjust_idx, post_adjust_idx (configs/base_config.py)
SCCLIP_MULTI = (3, 10)  # multi_start_idx, multi_end_idx: blocks 3..9 summed
SCCLIP_BETA = 0.4  # similarity threshold of the aggregation (clip/model.py:250)
SCCLIP_RES_CLS = 0.3  # res_cls
SCCLIP_LOF_NEIGHBOURS, SCCLIP_LOF_CONTAMINATION = 30, 0.05


def scclip_blocks(total: int) -> dict[str, object]:
    """The vanilla block outputs SC-CLIP reads in a tower of ``total`` blocks: pre, post, the fused range and the
    input of the last block (``total - 2``'s output)."""
    pre, post = official_layers((SCCLIP_PRE, SCCLIP_POST), total)
    multi = official_layers(range(*SCCLIP_MULTI), total)
    return {"pre": pre, "post": post, "multi": multi, "last_in": total - 2}


def lof_outliers(x: torch.Tensor, n_neighbors: int = SCCLIP_LOF_NEIGHBOURS,
                 contamination: float = SCCLIP_LOF_CONTAMINATION) -> torch.Tensor:
    """Boolean ``[N]``: the tokens ``x`` ``[N, D]`` whose Local Outlier Factor (SC-CLIP's variant) is above its
    ``1 - contamination`` quantile. Distances without an ``[N, N, D]`` buffer (``cdist``, not its matmul form)."""
    n = x.shape[0]
    k = min(n_neighbors, n - 1)
    x = x.float()
    dist = torch.cdist(x[None], x[None], compute_mode="donot_use_mm_for_euclid_dist")[0] ** 2
    knn_d, knn_i = torch.topk(dist, k=k + 1, largest=False)
    knn_d, knn_i = knn_d[:, 1:], knn_i[:, 1:]
    reach = torch.maximum(knn_d, knn_d[:, -1:].expand_as(knn_d))
    lrd = k / torch.nan_to_num(reach.mean(dim=1), nan=1e-6)
    scores = (lrd[knn_i] / lrd[:, None]).mean(dim=1)
    return scores > torch.quantile(scores, 1 - contamination)


def repair(tokens: torch.Tensor, outliers: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Patch tokens ``[N, D]`` with each outlier replaced by the mean of its non-outlier 8-neighbours (kept when
    it has none)."""
    gh, gw = grid
    d = tokens.shape[-1]
    fmap = tokens.t().reshape(1, d, gh, gw)
    keep = (~outliers).to(tokens.dtype).reshape(1, 1, gh, gw)
    kernel = torch.ones(d, 1, 3, 3, dtype=tokens.dtype, device=tokens.device)
    kernel[:, 0, 1, 1] = 0
    total = F.conv2d(F.pad(fmap * keep, (1, 1, 1, 1)), kernel, groups=d)
    count = F.conv2d(F.pad(keep, (1, 1, 1, 1)), kernel[:1])
    mean = total / count.clamp_min(1)
    update = outliers.to(tokens.dtype).reshape(1, 1, gh, gw) * (count > 0).to(tokens.dtype)
    out = fmap * (1 - update) + mean * update
    return out.reshape(d, -1).t()


def _similarity(tokens: torch.Tensor) -> torch.Tensor:
    t = tokens / tokens.norm(dim=-1, keepdim=True)
    return t @ t.t()


def _aggregate(tokens: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    return (corr / (corr.sum(dim=-1, keepdim=True) + 1e-6)) @ tokens


def scclip_attention(blk, x: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
    """The last block's attention output (``out_proj`` applied) on patch tokens ``x`` ``[N, D]``:
    ``[softmax(3 (mid - mean), negatives -inf) + softmax(k k^T s)] / 2`` per head, times v."""
    attn = blk.attn
    h = blk.ln_1(x)
    _, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    n, d = k.shape
    nh = attn.num_heads
    k, v = (t.reshape(n, nh, d // nh).transpose(0, 1) for t in (k, v))
    guide = (mid - mid.mean()) * 3.0
    guide = guide.masked_fill(guide < 0, float("-inf"))
    out = (guide.softmax(dim=-1) @ v + F.scaled_dot_product_attention(k, k, v)) / 2
    return F.linear(out.transpose(0, 1).reshape(n, d), attn.out_proj.weight, attn.out_proj.bias)


def scclip_image(visual, hidden: dict[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
    """SC-CLIP's final patch tokens of one image ``[N, D]`` (before ``ln_post``), from the vanilla block outputs
    ``hidden[i]`` ``[1 + N, D]`` (CLS first)."""
    blk = visual.transformer.resblocks[-1]
    spec = scclip_blocks(len(visual.transformer.resblocks))
    x_in = hidden[spec["last_in"]]
    cls = x_in[:1]
    outliers = lof_outliers(x_in[1:])
    x = repair(x_in[1:], outliers, grid)
    before = _similarity(repair(hidden[spec["pre"]][1:], outliers, grid))
    mid = before.clone()
    x = _aggregate(x, before.masked_fill(before < SCCLIP_BETA, 0.0))
    x = scclip_attention(blk, x, mid) + SCCLIP_RES_CLS * cls
    after = _similarity(hidden[spec["post"]][1:])
    after = after.masked_fill(after < SCCLIP_BETA, 0.0)
    x = _aggregate(x, after)
    fused = sum(hidden[i] for i in spec["multi"])
    re = scclip_attention(blk, fused[1:], mid) + SCCLIP_RES_CLS * fused[:1]
    return x + _aggregate(re, after)


def scclip_tail(visual, hidden: dict[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
    """SC-CLIP's patch tokens ``[B, N, D]`` of a batch, one image at a time."""
    return torch.stack([scclip_image(visual, {i: h[b] for i, h in hidden.items()}, grid)
                        for b in range(next(iter(hidden.values())).shape[0])])


def scclip_needs(total: int) -> tuple[int, ...]:
    """Every vanilla block output SC-CLIP reads in a tower of ``total`` blocks (``TokenPath.reads``)."""
    spec = scclip_blocks(total)
    return tuple(sorted({spec["pre"], spec["post"], spec["last_in"], *spec["multi"]}))

