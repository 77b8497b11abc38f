"""One pass of the image tower that computes every requested token source (docs/DESIGN.md section 2).

The vanilla tower always runs; blocks before the last ``n`` (n = the most final blocks any requested path
replaces: the surgery depth for CLIP Surgery's v-v path and GEM, 1 for the last-block methods) run once, as
plain open_clip blocks. In each of the last ``n`` blocks:

    h = ln_1(x_ori); q, k, v = in_proj(h)               # shared by every path
    o_qk = softmax(q k^T s) v                            # the vanilla attention
    o_p  = attention_p(q, k, v)                          # each active path's variant (methods.PATHS)
    out_proj applied once to all of them (one call, bias once per path)
    x_p = x_p + ls_1(o_p) (residual) or ls_1(o_p) (no residual); x_p += ls_2(mlp(ln_2(x_p))) if the path has FFN
    x_ori = x_ori + ls_1(o_qk); x_ori = x_ori + ls_2(mlp(ln_2(x_ori)))

A path's state starts as the vanilla input of its first block. New paths are registry entries
(``methods.register_path``); this loop never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer

from surgery_core.errors import InputError
from surgery_core.model.attention import AttnContext
from surgery_core.model.methods import ORI, POSEMBED_RULES, SHARED_RULE, get_path
from surgery_core.model.rows import AttentionRows, row_vanilla


def _resize_grid(grid: torch.Tensor, dst: tuple[int, int], rule: str) -> torch.Tensor:
    """``[1, D, h0, w0]`` positional grid to ``dst`` cells by one of ``methods.POSEMBED_RULES`` (sources there)."""
    if rule == "bicubic_size":
        return F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    if rule == "bilinear_size":
        return F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    if rule == "bicubic_antialias":
        return F.interpolate(grid, size=dst, mode="bicubic", align_corners=False, antialias=True)
    if rule == "bicubic_scale":
        # scale_factor (g + 0.1) / g0 with recompute_scale_factor left off: torch sizes the output
        # floor(g0 * factor) = g and maps coordinates with the factor itself (not g / g0).
        h0, w0 = grid.shape[-2:]
        out = F.interpolate(grid, scale_factor=((dst[0] + 0.1) / h0, (dst[1] + 0.1) / w0), mode="bicubic",
                            align_corners=False, recompute_scale_factor=False)
        if tuple(out.shape[-2:]) != tuple(dst):
            raise ValueError(f"bicubic_scale resize of a {h0}x{w0} grid gave {tuple(out.shape[-2:])}, not {dst}")
        return out
    raise ValueError(f"unknown positional-embedding rule {rule!r}; known: {list(POSEMBED_RULES)}")


def interpolate_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int],
                          rule: str = SHARED_RULE) -> torch.Tensor:
    """Resize a ``[1 + gh*gw, D]`` positional embedding to another grid by ``rule`` (a key of
    ``methods.POSEMBED_RULES``; default: bicubic by size), CLS row kept; unchanged at its own grid."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    d = patches.shape[-1]
    grid = patches.reshape(1, src_grid[0], src_grid[1], d).permute(0, 3, 1, 2).float()
    grid = _resize_grid(grid, tuple(dst_grid), rule)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, d).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


def patchify(visual: VisionTransformer, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch embedding with the class token prepended, ``[B, 1 + gh*gw, D]``, before the positional embedding:
    what every positional-embedding rule shares."""
    ph, pw = visual.patch_size
    h, w = images.shape[-2:]
    if h % ph or w % pw:
        raise InputError(None, f"input {h}x{w} px is not a multiple of the model's patch size {ph}x{pw} px")
    x = visual.conv1(images)
    grid = (x.shape[-2], x.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    return torch.cat([cls, x], dim=1), grid


def embed(visual: VisionTransformer, images: torch.Tensor, rule: str = SHARED_RULE,
          patches: tuple[torch.Tensor, tuple[int, int]] | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch + class + positional embedding (resized by ``rule`` off the model's own grid) and ``ln_pre``, for
    any input size divisible by the patch. patches: :func:`patchify`'s output when already computed."""
    x, grid = patches if patches is not None else patchify(visual, images)
    pos = interpolate_pos_embed(visual.positional_embedding, tuple(visual.grid_size), grid, rule)
    return visual.ln_pre(x + pos.to(x.dtype)), grid


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def _qk(blk, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head q, k of a plain block's attention input (what its vanilla attention map is made of)."""
    attn = blk.attn
    q, k, _ = F.linear(blk.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return _heads(q, attn.num_heads), _heads(k, attn.num_heads)


@dataclass(frozen=True)
class TowerTokens:
    """Projected tokens (``ln_post`` then ``proj``) of one pass, ``[B, 1 + gh*gw, embed_dim]``, CLS first, not
    L2-normalised. ``tokens["ori"]`` is the vanilla tower (``[:, 0]`` equals ``encode_image``); every other key
    is a path of ``methods.PATHS``. grid: (gh, gw) patch grid."""

    tokens: dict[str, torch.Tensor]
    grid: tuple[int, int]


def tower_forward(visual: VisionTransformer, images: torch.Tensor, paths=(), depth: int = 6,
                  posembed: str = SHARED_RULE, patches=None, rows: AttentionRows | None = None) -> TowerTokens:
    """Run the image tower once and return the projected tokens of the vanilla tower and of each path.

    images: ``[B, 3, H, W]`` normalised, H and W multiples of the patch size. paths: names of
    ``methods.PATHS`` (unknown names raise ValueError). depth: the surgery depth, i.e. how many final blocks
    the ``"depth"`` paths (v-v, GEM) replace; 0 = none (those paths are then copies of ``ori``); clipped to
    the tower's block count. posembed: the rule (``methods.POSEMBED_RULES``) that resizes the positional
    embedding off the model's own grid; patches: :func:`patchify`'s output of ``images`` when already computed
    (passes of several rules share it). rows: when given, filled with one query token's attention rows
    (vanilla, every block; each path, the blocks it changes) from this pass's own q, k, v (``rows.py``).
    """
    blocks = visual.transformer.resblocks
    if depth < 0:
        raise InputError(None, f"surgery depth must be >= 0, got {depth}")
    if not getattr(visual.transformer, "batch_first", True):
        raise ValueError("open_clip transformer must be batch_first")
    specs = [get_path(p) for p in dict.fromkeys(paths) if p != ORI]
    total = len(blocks)
    first = {s.name: total - s.n_blocks(depth, total) for s in specs}  # index of each path's first block
    # Blocks before the last `depth` always run as plain blocks (the seed's dual path starts there too).
    split = min([total - min(depth, total), *first.values()])
    # What some paths read of the vanilla tower: the (q, k) of given blocks (ResCLIP), block outputs (tails).
    tails = [s for s in specs if s.blocks == "tail"]
    attn_taps = sorted({i for s in specs if s.blocks != "tail" for i in s.read_blocks(total)})
    hidden_taps = {i for s in tails for i in s.read_blocks(total)}
    taps, hidden = [], {}
    x, grid = embed(visual, images, posembed, patches)
    for idx, blk in enumerate(blocks[:split]):
        if idx in attn_taps or rows is not None:
            qk = _qk(blk, x)
            if idx in attn_taps:
                taps.append(qk)
            if rows is not None:
                rows.vanilla[idx] = row_vanilla(*qk, None, None, rows.index)
        x = blk(x)
        if idx in hidden_taps:
            hidden[idx] = x
    x_ori, state = x, {}
    for idx in range(split, total):
        blk = blocks[idx]
        attn = blk.attn
        h = blk.ln_1(x_ori)
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))
        if idx in attn_taps:
            taps.append((q, k))
        active = [s for s in specs if idx >= first[s.name]]
        ctx = AttnContext(h, grid, q, k, v, tuple(taps))
        if rows is not None:
            rows.vanilla[idx] = row_vanilla(q, k, v, ctx, rows.index)
            for s in active:
                if s.rows is not None:  # a path registered without inspector rows shows none
                    rows.paths.setdefault(s.name, {})[idx] = s.rows(q, k, v, ctx, rows.index)
        outs = [F.scaled_dot_product_attention(q, k, v)] + [s.attention(q, k, v, ctx) for s in active]
        b, _, n, _ = q.shape
        both = torch.cat(outs, dim=2).transpose(1, 2).reshape(b, len(outs) * n, -1)
        both = F.linear(both, attn.out_proj.weight, attn.out_proj.bias)
        ffn_rows = []
        for j, s in enumerate(active, start=1):
            o = blk.ls_1(both[:, j * n:(j + 1) * n])
            y = state.get(s.name, x_ori) + o if s.residual else o
            state[s.name] = y
            if s.ffn:
                ffn_rows.append(s.name)
        if ffn_rows:  # one MLP call for every path that keeps its FFN in this block
            ys = torch.cat([state[p] for p in ffn_rows], dim=1)
            ys = ys + blk.ls_2(blk.mlp(blk.ln_2(ys)))
            for j, p in enumerate(ffn_rows):
                state[p] = ys[:, j * n:(j + 1) * n]
        x_ori = x_ori + blk.ls_1(both[:, :n])
        x_ori = x_ori + blk.ls_2(blk.mlp(blk.ln_2(x_ori)))
        if idx in hidden_taps:
            hidden[idx] = x_ori
    for s in tails:  # patch tokens only: the CLS slot keeps the vanilla one (such methods take cls="ori")
        state[s.name] = torch.cat([x_ori[:, :1], s.attention(visual, hidden, grid).to(x_ori.dtype)], 1)
    out = {ORI: visual.ln_post(x_ori) @ visual.proj}
    for s in specs:
        out[s.name] = visual.ln_post(state[s.name]) @ visual.proj if s.name in state else out[ORI]
    return TowerTokens(out, grid)
