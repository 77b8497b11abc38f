"""The attention inspector, shared by Compare and Explore: pick a patch, see where it attends.

Per method, the patch's attention row in each block the method changes beside the vanilla block's row, and the
vanilla tower's row in every block; the numbers are :func:`surgery_core.run.explore.inspect_patch`'s (the same
passes as the maps, computed only while the inspector is open).
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, snapshot_ui, widgets
from surgery_core.errors import InputError
from surgery_core.model.methods import METHODS, PATHS, posembed_words
from surgery_core.run import explore


def _blocks(ids: list[int]) -> str:
    """0-based block indices in words, 1-based as papers count them (``blocks 7-12``)."""
    shown = [i + 1 for i in ids]
    return f"block {shown[0]}" if len(shown) == 1 else f"blocks {shown[0]}-{shown[-1]}"


def show(loaded, image, resolution: explore.Resolution, depth: int, methods, posembed: str, key: str) -> None:
    """The inspector's toggle, patch inputs and figures (nothing is computed while the toggle is off)."""
    if not st.toggle("Attention inspector", key=f"{key}_on",
                     help="pick a patch: where it attends, per method, in the blocks the method changes"):
        return
    gh, gw = resolution.grid
    c1, c2, _ = st.columns([1, 1, 4])
    r = c1.number_input("Patch row", 0, gh - 1, value=gh // 2, key=f"{key}_row", help=f"0 = top, {gh - 1} = bottom")
    c = c2.number_input("Patch column", 0, gw - 1, value=gw // 2, key=f"{key}_col",
                        help=f"0 = left, {gw - 1} = right")
    try:
        with st.spinner("Attention rows of the patch (one pass per positional-embedding rule)…", show_time=True):
            got = explore.inspect_patch(loaded, image, resolution, (int(r), int(c)), depth, tuple(methods), posembed)
    except InputError as exc:
        st.error(f"**Patch not applied.** {exc}", icon=":material/grid_on:")
        return
    rows = got.rows
    where = (f"the whole {resolution.size} px input" if resolution.window is None else
             f"the {resolution.window} px window at ({got.origin[1]}, {got.origin[0]}) px that holds it")
    divided = ", ".join(f"{p.name} {p.row_mass:g}" for p in PATHS.values() if p.row_mass != 1)
    snapshot_ui.caption(
        f"Patch row {r}, column {c} of the {gh}x{gw} grid, attending over {where} ({rows.grid[0]}x{rows.grid[1]} "
        f"patches, the white square is the patch) · each map: the attention row averaged over heads, drawn over the "
        f"patch grid (the weight on the CLS token is given in the title, not drawn) · rows whose official form sums "
        f"to more than one are divided by it ({divided}) · "
        f"{posembed_words(posembed, explore.resolution_resizes(loaded, resolution))}, {rows.passes} tower "
        f"pass{'es' if rows.passes > 1 else ''} · surgery depth {depth} · colour 0 to each map's maximum")
    none = []
    for m in methods:
        blocks = rows.methods.get(m) or {}
        if not blocks:
            path = PATHS.get(METHODS[m].tokens)
            why = ("no block changed: the vanilla tower" if path is None else
                   "computed after the tower from its block outputs: no per-block attention")
            none.append(f"`{m}` ({why})")
            continue
        ids = sorted(blocks)
        panels = [(f"{m} · block {b + 1} · CLS {rows.cls_share[(m, b)]:.2f}", blocks[b][0]) for b in ids]
        last = ids[-1]
        panels.append((f"vanilla · block {last + 1} · CLS {rows.cls_share[('vanilla', m, last)]:.2f}",
                       blocks[last][1]))
        snapshot_ui.markdown(f"**{m}** · {_blocks(ids)} changed · beside it the vanilla row of block {last + 1}")
        widgets.chart(charts.attention_rows(panels, got.cell), f"{key}_rows_{m}")
    if none:
        st.caption("No per-block row: " + "; ".join(none) + ".")
    ids = sorted(rows.vanilla)
    snapshot_ui.markdown(f"**vanilla tower** · the patch's q-k attention row in every block ({_blocks(ids)})")
    widgets.chart(charts.attention_rows([(f"block {b + 1} · CLS {rows.cls_share[('vanilla', b)]:.2f}",
                                          rows.vanilla[b]) for b in ids], got.cell), f"{key}_rows_vanilla")
