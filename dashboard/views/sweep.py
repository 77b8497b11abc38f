"""Threshold sweep: mAP against the heatmap percentile and the IoU threshold, per method (``run.sweep()``)."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, permalink, snapshot_ui, state, widgets

permalink.declare(state.Param("sc", "str", "", "Sweep: class of the per-class view ('' = mAP)"))

run = data.current_run()
data.ensure(run, "sweep")
sweep = run.sweep()
PS, TS = [float(p) for p in sweep.percentiles], [float(t) for t in sweep.ious]


def values(m: str, proto: str, interp: str, cls: str) -> list[list]:
    cell = sweep.cell(m, proto, interp)
    return cell.map if not cls else cell.per_class[cls]


def best_cell(m: str, proto: str, interp: str, cls: str) -> tuple:
    if not cls:
        b = sweep.cell(m, proto, interp).best
        return b.percentile, b.iou, b.map
    z = np.array([[np.nan if v is None else v for v in r] for r in values(m, proto, interp, cls)], float)
    if not np.isfinite(z).any():
        return PS[0], TS[0], None
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    return PS[i], TS[j], float(z[i, j])


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    row = widgets.control_row()
    proto = widgets.protocol(run, row)
    interp = widgets.interp(run, row, options=sweep.interps)
    state.coerce("p", PS)
    p = widgets.percentile(run, row)
    iou = widgets.iou(run, row)
    methods = widgets.methods(run)
    with_gt = [n for n in run.classes if any(v is not None for r in values(methods[0], proto, interp, n) for v in r)]
    state.coerce("sc", [""] + with_gt, "")
    cls = row.selectbox("Per-class view", [""] + with_gt, key="sc", persist_state="session", width=220,
                        format_func=lambda n: "all classes (mAP)" if not n else n)
    what = "mAP" if not cls else f"AP of {cls}"
    snapshot_ui.shown_state(methods=methods, percentile=p, iou=iou, protocol=proto, interp=interp, sweep_class=cls)
    widgets.how(run, what=f"{what} over the sweep grid; {sweep.box_note} (percentile varies)",
                protocol=proto, interp=interp)

    left, right = st.columns(2)
    ti, pi = TS.index(iou), PS.index(p)
    snapshot_ui.markdown(f"**{what} vs heatmap percentile** at IoU {iou:g}", left)
    widgets.chart(charts.lines(PS, {m: [r[ti] for r in values(m, proto, interp, cls)] for m in methods},
                               "heatmap percentile", what, mark_x=p), "vs_p", left)
    snapshot_ui.markdown(f"**{what} vs IoU threshold** at percentile {p:g}", right)
    widgets.chart(charts.lines(TS, {m: values(m, proto, interp, cls)[pi] for m in methods}, "IoU threshold",
                               what, mark_x=iou), "vs_iou", right)
    seed = pd.DataFrame({"method": methods} | {f"IoU {t:g}": [values(m, proto, interp, cls)[pi][j] for m in methods]
                                               for j, t in enumerate(TS)})
    cols = [f"IoU {t:g}" for t in TS]
    snapshot_ui.markdown(f"**The seed's table**: {what} per IoU threshold at percentile {p:g}")
    widgets.table(widgets.colour_scale(seed, cols, lo=0.0), len(seed), shown="seed table")

    snapshot_ui.markdown(f"**Percentile x IoU**: {what} in every cell · ★ and bold = best setting of each method")
    best = {m: best_cell(m, proto, interp, cls) for m in methods}
    widgets.chart(charts.sweep_heatmaps({m: values(m, proto, interp, cls) for m in methods}, PS, TS, best, what),
                  "grid")
    snapshot_ui.caption(" · ".join(
        f"{m}: best {what} {b[2]:.4f} at p{b[0]:g}, IoU {b[1]:g}" if b[2] is not None else f"{m}: no value"
        for m, b in best.items()))
    permalink.sync_url()


view()
