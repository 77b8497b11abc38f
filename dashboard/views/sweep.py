"""Threshold sweep: mAP against the box rule's parameter (the heatmap percentile, or the fixed value of the 0-1
map) and the IoU threshold, per method (``run.sweep_part``).

The cell the user asked for (percentile, IoU, protocol, interpolation) is scored first, from that one cell's
boxes; each method's whole sweep is computed in a background thread (:func:`dashboard.data.sweep_parts`) and
its charts appear as it lands, under a progress bar, without blocking the page.
"""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, permalink, snapshot_ui, state, widgets
from surgery_core.eval.boxes import BoxRule
from surgery_core.eval.protocols import Cell
from surgery_core.run.evaluation import SWEEP_RULES, box_note, sweep_rows, sweep_rule

permalink.declare(state.Param("sc", "str", "", "Sweep: class of the per-class view ('' = mAP)"))

run = data.current_run()
TS = [float(t) for t in run.cfg.iou_thresholds]
ROWS = {r: sweep_rows(run.cfg, r) for r in SWEEP_RULES}  # the sweep's rows: percentiles, or fixed values
ROW_LABEL = {"percentile": "heatmap percentile", "fixed": "fixed threshold (0-1 map)"}
SWEEP_INTERPS = ["voc07", "voc"]  # what run.sweep_part computes (COCO is on the Per-class AP page)
WITH_GT = [run.classes[k] for k in sorted(set(run.gt.class_id.tolist()))]


def values(part: dict, interp: str, cls: str) -> list[list]:
    """``part``: one method's :meth:`Run.sweep_part` (interp -> SweepCell)."""
    cell = part[interp]
    return cell.map if not cls else cell.per_class[cls]


def best_cell(part: dict, interp: str, cls: str, ps: list[float]) -> tuple:
    if not cls:
        b = part[interp].best
        return b.percentile, b.iou, b.map
    z = np.array([[np.nan if v is None else v for v in r] for r in values(part, interp, cls)], float)
    if not np.isfinite(z).any():
        return ps[0], TS[0], None
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    return ps[i], TS[j], float(z[i, j])


@st.fragment(run_every=1.0)
def filling(cells: tuple[Cell, ...], rule: str) -> None:
    """Progress of the background sweep of the page's cells (their methods' sweeps under their protocol, along
    ``rule``); reruns the page whenever another method's sweep has landed."""
    n_total, proto = len(cells), cells[0].protocol.name
    _, missing, _ = data.sweep_parts(run, cells)
    done = n_total - len(missing)
    n = len(ROWS[rule])
    what = "percentiles" if rule == "percentile" else "fixed values"
    st.progress(done / max(n_total, 1),
                text=f"Threshold sweep filling in: {done} of {n_total} methods done ({proto}; each: boxes at "
                     f"{n} {what}, then {n} x {len(TS)} cells, VOC07 and VOC); the page stays usable")
    if st.session_state.get("_sweep_missing") != len(missing):
        st.session_state["_sweep_missing"] = len(missing)
        st.rerun(scope="app")


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    row = widgets.control_row()
    proto = widgets.protocol(run, row)
    interp = widgets.interp(run, row, options=SWEEP_INTERPS)
    cut = widgets.percentile(run, row, rules=SWEEP_RULES)  # Otsu has no parameter to sweep
    rule = sweep_rule(cut)
    ps, p, ylabel = ROWS[rule], (cut.value if rule == "fixed" else cut), ROW_LABEL[rule]
    iou = widgets.iou(run, row)
    methods = widgets.methods(run)
    cells = tuple(Cell.of(m, proto, cut) for m in methods)  # the cell asked for, per method; its sweep around it
    state.coerce("sc", [""] + WITH_GT, "")
    cls = row.selectbox("Per-class view", [""] + WITH_GT, key="sc", persist_state="session", width=220,
                        format_func=lambda n: "all classes (mAP)" if not n else n)
    what = "mAP" if not cls else f"AP of {cls}"
    snapshot_ui.shown_state(cells=cells, iou=iou, interp=interp, sweep_class=cls)
    # the box rule of the heading's cell (not the run's own value); the curves vary only that value
    widgets.how(run, what=f"{what} over the sweep grid; {box_note(run.cfg.boxes.with_cut(cut))}; along the curves "
                          f"only the {'percentile' if rule == 'percentile' else 'fixed value'} varies"
                          + (f" · **{note}**" if (note := widgets.override_note(run, cut)) else ""),
                protocol=proto, interp=interp)

    parts, missing, errors = data.sweep_parts(run, cells, start=False)
    st.session_state["_sweep_missing"] = len(missing)
    k = run.classes.index(cls) if cls else None

    def at(m: str, v: float, t: float) -> float | None:
        """The method's value at row value ``v`` and IoU ``t``: from its stored sweep when the cell is on the
        sweep's grid, else scored from that cell's own boxes (cut first when the run store lacks them)."""
        if m in parts and v in ps and t in TS:
            return values(parts[m], interp, cls)[ps.index(v)][TS.index(t)]
        res = data.ap_result(run, Cell.of(m, proto, v if rule == "percentile" else BoxRule("fixed", v)), interp, t)
        out = res.mAP if k is None else float(res.ap[0, k])
        return None if out != out else out

    # The cell asked for, first: from the method's sweep when it is there, else scored from that one cell's boxes.
    cell = {m: at(m, p, iou) for m in methods if m not in errors}
    snapshot_ui.shown_numbers("cell", {f"{what} {m}": v for m, v in cell.items()})
    at_text = f"percentile {p:g}" if rule == "percentile" else f"fixed value {p:g}"
    snapshot_ui.markdown(f"**{what} at {at_text}, IoU {iou:g}** ({proto}, {interp})")
    widgets.metrics({f"{m}": "—" if v is None else f"{v:.4f}" for m, v in cell.items()},
                    helps=[widgets.METHODS[m].description for m in cell])
    off = [f"{'p' if rule == 'percentile' else 'fixed '}{p:g}"] if p not in ps else []
    off += [f"IoU {iou:g}"] if iou not in TS else []
    if off:  # said, never silently snapped to the nearest stored value
        snapshot_ui.caption(
            f"{' and '.join(off)} {'is' if len(off) == 1 else 'are'} outside the stored sweep ({ylabel} "
            f"{ps[0]:g}-{ps[-1]:g}, IoU {TS[0]:g}-{TS[-1]:g}): the values at {' and '.join(off)} are computed from "
            "that cell's own boxes, the same way the sweep scores its cells; the Percentile x IoU grid below is "
            "the stored sweep")
    for m, err in errors.items():
        st.error(f"The sweep of {m} ({proto}) failed: {err}", icon=":material/error:")
    if missing:  # queued only now, so that the cell above did not wait behind whole sweeps
        data.sweep_parts(run, missing)
        filling(cells, rule)
    shown = [m for m in methods if m in parts]
    if not shown:
        permalink.sync_url()
        return

    left, right = st.columns(2)
    rows_x, ts_x = sorted({*ps, p}), sorted({*TS, iou})  # the stored grid, and the cell asked for when off it
    snapshot_ui.markdown(f"**{what} vs {ylabel}** at IoU {iou:g}", left)
    memo = (data.run_key(run), tuple(shown), proto, interp, rule, cls)  # what every chart below depends on
    widgets.chart(lambda: charts.lines(rows_x, {m: [at(m, v, iou) for v in rows_x] for m in shown}, ylabel, what,
                                       mark_x=p), "vs_p", left, memo=(*memo, iou, p))
    snapshot_ui.markdown(f"**{what} vs IoU threshold** at {at_text}", right)
    widgets.chart(lambda: charts.lines(ts_x, {m: [at(m, p, t) for t in ts_x] for m in shown}, "IoU threshold", what,
                                       mark_x=iou), "vs_iou", right, memo=(*memo, p, iou))
    seed = pd.DataFrame({"method": shown} | {f"IoU {t:g}": [at(m, p, t) for m in shown] for t in ts_x})
    cols = [f"IoU {t:g}" for t in ts_x]
    snapshot_ui.markdown(f"**The seed's table**: {what} per IoU threshold at {at_text}")
    widgets.table(widgets.colour_scale(seed, cols, lo=0.0), len(seed), shown="seed table")

    snapshot_ui.markdown(f"**{'Percentile' if rule == 'percentile' else 'Fixed value'} x IoU**: {what} in every "
                         "cell · ★ and bold = best setting of each method")
    best = {m: best_cell(parts[m], interp, cls, ps) for m in shown}
    widgets.chart(lambda: charts.sweep_heatmaps({m: values(parts[m], interp, cls) for m in shown}, ps, TS, best,
                                                what, ylabel=ylabel), "grid", memo=memo)
    row_text = "p{:g}" if rule == "percentile" else "fixed {:g}"
    snapshot_ui.caption(" · ".join(
        f"{m}: best {what} {b[2]:.4f} at {row_text.format(b[0])}, IoU {b[1]:g}" if b[2] is not None
        else f"{m}: no value" for m, b in best.items()))
    permalink.sync_url()


view()
