"""The dual-path forward of CLIP Surgery (DESIGN section 2), reading weights from open_clip's own modules.

The last ``depth`` residual blocks run two paths from the same weights in one pass:

    h = ln_1(x_ori); q, k, v = in_proj(h)
    o_qk = out_proj(softmax(q k^T s) v)     # original attention
    o_vv = out_proj(softmax(v v^T s) v)     # v-v attention: same v, same out_proj
    x_new = x_new + ls_1(o_vv)              # no FFN on the new path
    x_ori = x_ori + ls_1(o_qk); x_ori = x_ori + ls_2(mlp(ln_2(x_ori)))

Both attentions use ``scaled_dot_product_attention``; the two outputs go through one ``out_proj`` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer


@dataclass(frozen=True)
class SurgeryTokens:
    """Projected tokens of both paths, ``[B, 1 + gh*gw, embed_dim]``, CLS first, not L2-normalised.

    ori: the q-k path (vanilla CLIP; ``ori[:, 0]`` equals ``encode_image``). vv: the v-v path, its own CLS.
    grid: (gh, gw) patch grid.
    """

    ori: torch.Tensor
    vv: torch.Tensor
    grid: tuple[int, int]

    @property
    def mixed(self) -> torch.Tensor:
        """Published CLIP Surgery output: CLS of ``ori``, patch tokens of ``vv``."""
        return torch.cat([self.ori[:, :1], self.vv[:, 1:]], dim=1)


def interpolate_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    """Resize a ``[1 + gh*gw, D]`` positional embedding to another grid (bicubic, CLS row kept)."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    d = patches.shape[-1]
    grid = patches.reshape(1, src_grid[0], src_grid[1], d).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=dst_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, d).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


def embed(visual: VisionTransformer, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch + class + positional embedding and ``ln_pre``, for any input size divisible by the patch."""
    ph, pw = visual.patch_size
    h, w = images.shape[-2:]
    if h % ph or w % pw:
        raise ValueError(f"input {h}x{w} is not a multiple of the patch size {ph}x{pw}")
    x = visual.conv1(images)
    grid = (x.shape[-2], x.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    pos = interpolate_pos_embed(visual.positional_embedding, tuple(visual.grid_size), grid)
    x = torch.cat([cls, x], dim=1) + pos.to(x.dtype)
    return visual.ln_pre(x), grid


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def dual_path_block(block, x_ori: torch.Tensor, x_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One residual block on both paths (see module docstring). Tokens are ``[B, N, D]``."""
    attn = block.attn
    h = block.ln_1(x_ori)
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))
    o_qk = F.scaled_dot_product_attention(q, k, v)
    o_vv = F.scaled_dot_product_attention(v, v, v)
    b, _, n, _ = q.shape
    both = torch.cat([o_qk, o_vv], dim=2).transpose(1, 2).reshape(b, 2 * n, -1)
    both = F.linear(both, attn.out_proj.weight, attn.out_proj.bias)
    o_qk, o_vv = both[:, :n], both[:, n:]
    x_new = x_new + block.ls_1(o_vv)
    x_ori = x_ori + block.ls_1(o_qk)
    x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
    return x_ori, x_new


def surgery_forward(visual: VisionTransformer, images: torch.Tensor, depth: int = 6) -> SurgeryTokens:
    """Run the image tower once and return the projected tokens of both paths.

    images: ``[B, 3, H, W]`` normalised, H and W multiples of the patch size. depth: number of final
    blocks that run the v-v path too (0 = none: ``vv`` is then a copy of ``ori``); clipped to the tower's
    block count.
    """
    blocks = visual.transformer.resblocks
    if depth < 0:
        raise ValueError(f"surgery depth must be >= 0, got {depth}")
    depth = min(depth, len(blocks))
    x, grid = embed(visual, images)
    if not getattr(visual.transformer, "batch_first", True):
        raise ValueError("open_clip transformer must be batch_first")
    split = len(blocks) - depth
    for blk in blocks[:split]:
        x = blk(x)
    x_ori = x_new = x
    for blk in blocks[split:]:
        x_ori, x_new = dual_path_block(blk, x_ori, x_new)
    if depth == 0:
        x_new = x_ori
    ori = visual.ln_post(x_ori) @ visual.proj
    vv = visual.ln_post(x_new) @ visual.proj
    return SurgeryTokens(ori, vv, grid)

