"""Attention rows for the inspector: one query token's attention, per head, in the blocks a method changes.

Each path's ``TokenPath.rows(q, k, v, ctx, i)`` returns ``[B, H, N]``: the weights with which query token ``i``
mixes the values in that variant (the matrix ``A`` of ``A @ v``, row ``i``), divided by the row's total, which is
a constant of the variant (SCLIP's rows sum to 2, SegEarth-OV's to 3, ResCLIP's to tau = 2), so that every row
shown sums to one. ``TokenPath.row_mass`` says what was divided out.

They are computed only when asked for (``tower_forward(..., rows=AttentionRows(i))``), from the same q, k, v
and context as the forward pass's own attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from surgery_core.model.attention import softmax_row


def row_vanilla(q, k, v, ctx, i):
    """The vanilla block's row: ``softmax(q_i k^T s)`` per head."""
    return softmax_row(q, k, i)


@dataclass
class AttentionRows:
    """A request for query token ``index``'s attention rows, filled by ``tower_forward``: ``vanilla[block]`` and
    ``paths[path][block]`` are ``[B, H, N]`` float32 (rows sum to one), for every block of the vanilla tower and
    each block a path changes. Tail paths (SC-CLIP) have no per-block attention variant and no rows."""

    index: int
    vanilla: dict[int, torch.Tensor] = field(default_factory=dict)
    paths: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class CellRows:
    """What the inspector shows for one patch ``cell`` (row, column) of a crop's ``grid``: per method, its
    attention row (head mean, over the crop's patches) in each block it changes and the vanilla row of the same
    block in the same pass (``methods[name] = {block: (method_row, vanilla_row)}``; empty for methods that change
    no block, e.g. ``standard``, or that have no per-block attention, SC-CLIP), and the vanilla tower's row in
    every block (``vanilla``), from the pass of the class probabilities' rule. Maps are ``[gh, gw]`` float32
    numpy; ``cls_share`` gives, for the same keys, the weight the row puts on the CLS token (not drawn)."""

    cell: tuple[int, int]
    grid: tuple[int, int]
    methods: dict[str, dict[int, tuple]]
    vanilla: dict[int, object]
    cls_share: dict[tuple, float]
    passes: int


def _patch_map(row: torch.Tensor, grid: tuple[int, int]):
    """``[H, N]`` rows of one image to the head-mean patch map ``[gh, gw]`` (numpy) and the CLS weight."""
    mean = row.float().mean(dim=0)
    return mean[1:].reshape(grid).cpu().numpy(), float(mean[0])


@torch.no_grad()
def cell_rows(visual, crop: torch.Tensor, methods, cell: tuple[int, int], depth: int = 6,
              posembed: str = "official") -> CellRows:
    """The attention rows of patch ``cell`` of one crop ``[1, 3, h, w]`` (normalised, the tower's input as the
    run cut it): one tower pass per positional-embedding rule of ``methods`` (``methods.pass_plan``), each
    filling an :class:`AttentionRows` request from its own q, k, v."""
    from surgery_core.model.forward import patchify, tower_forward
    from surgery_core.model.encoder import resizes
    from surgery_core.model.methods import get_method, pass_plan, paths_for, probs_rule

    ph, pw = visual.patch_size
    grid = (crop.shape[-2] // ph, crop.shape[-1] // pw)
    r, c = cell
    if not (0 <= r < grid[0] and 0 <= c < grid[1]):
        raise ValueError(f"patch ({r}, {c}) is outside the {grid[0]}x{grid[1]} grid")
    index = 1 + r * grid[1] + c
    resize = resizes(visual, tuple(crop.shape[-2:]))
    plan = pass_plan(methods, resize, posembed)
    patches = patchify(visual, crop)
    got, shares = {}, {}
    for rule, names in plan.items():
        req = AttentionRows(index)
        tower_forward(visual, crop, paths_for(names), depth, rule, patches, rows=req)
        got[rule] = req
    out = {}
    for name in methods:
        m = get_method(name)
        req = got[next(r for r, ns in plan.items() if name in ns)]
        blocks = {}
        for b, row in req.paths.get(m.tokens, {}).items():
            mine, share = _patch_map(row[0], grid)
            van, vshare = _patch_map(req.vanilla[b][0], grid)
            blocks[b] = (mine, van)
            shares[(name, b)], shares[("vanilla", name, b)] = share, vshare
        out[name] = blocks
    base = got[probs_rule(resize, posembed)]
    vanilla = {}
    for b, row in sorted(base.vanilla.items()):
        vanilla[b], shares[("vanilla", b)] = _patch_map(row[0], grid)
    return CellRows((r, c), grid, out, vanilla, shares, len(plan))
