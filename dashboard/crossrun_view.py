"""The cross-run view of the Runs page (its URL parameters are declared by ``views/runs.py``): 2 to 4 (run,
method) pairs on the images their runs share, drawn exactly as Compare draws one run's methods
(:mod:`dashboard.render` over :mod:`surgery_core.run.pairs`), with the per-class AP table of the pairs (difference
to the first, best marked) and their threshold sweeps in one chart.

The numbers are :mod:`surgery_core.share.crossrun`'s; here they are only cached and drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, render, snapshot_ui, state, widgets
from surgery_core.errors import PathNotAllowedError, SurgeryError
from surgery_core.eval.boxes import cut_short
from surgery_core.eval.protocols import Cell
from surgery_core.run import evaluation, stored
from surgery_core.run.config import RunConfig
from surgery_core.share import crossrun
from surgery_core.share.crossrun_report import how_text

ss = st.session_state
SIDE = 400


def _key(pairs: list[crossrun.Pair]) -> tuple:
    return tuple((data.run_key(p.run), p.method, p.label) for p in pairs)


@st.cache_data(max_entries=16, show_spinner="Pairing the runs' images and ground truth…")
def pairing(key: tuple, _pairs: list[crossrun.Pair]) -> crossrun.Pairing:
    return crossrun.pairing_for(_pairs)


@st.cache_data(max_entries=32, show_spinner="Per-class AP of each pair on the shared images…")
def per_class(key: tuple, protocol: str, interp: str, iou: float, _pairs, _pairing) -> pd.DataFrame:
    return crossrun.compare_table(_pairs, _pairing, protocol, interp, iou)


@st.cache_data(max_entries=32, show_spinner="Threshold sweep of each pair on the shared images…")
def sweeps(key: tuple, protocol: str, interp: str, iou: float, _pairs, _pairing) -> dict:
    runs = crossrun.distinct_runs(_pairs)
    classes = _pairs[0].run.classes
    return {n: crossrun.sweep_series(p, _pairing.index[runs.index(p.run)], classes, protocol, interp, iou)
            for p, n in zip(_pairs, crossrun.unique_names(_pairs))}


def open_pairs(chosen: list[str], by_name: dict[str, stored.StoredRun]) -> list[crossrun.Pair] | None:
    """The chosen ``folder:method`` rows as pairs, their runs opened from the store (with a bar when a run's
    heatmaps must be computed); None after an error shown on the page."""
    out = []
    for p in chosen:
        folder, _, method = p.rpartition(":")
        sr = by_name.get(folder)
        if sr is None:
            st.error(f"Run folder {folder} is no longer in the store.")
            return None
        try:
            cfg = RunConfig.model_validate(sr.config)
            if sr.random_weights:  # computed with random weights on purpose (its run.json says so): opened as
                st.session_state.setdefault(data.RANDOM_OK, set()).add(cfg.run_hash)  # such, and labelled below
            run = data.open_run(cfg, st.container())
        except (PathNotAllowedError, SurgeryError, OSError, ValueError) as exc:
            st.error(f"**Run {sr.title()} cannot be opened.** {exc}", icon=":material/error:")
            return None
        out.append(crossrun.Pair(run, method, sr.label))
    try:
        crossrun.check_pairs(out)
    except SurgeryError as exc:
        st.error(str(exc))
        return None
    return out


def step(delta: int, ids: list[str]) -> None:
    pos = ids.index(ss["rsample"]) if ss.get("rsample") in ids else 0
    ss["rsample"] = ids[(pos + delta) % len(ids)]


def show(chosen: list[str], by_name: dict[str, stored.StoredRun]) -> None:
    pairs = open_pairs(chosen, by_name)
    if pairs is None:
        return
    key = _key(pairs)
    pg = pairing(key, pairs)
    runs = crossrun.distinct_runs(pairs)
    counts = ", ".join(f"run {r.title()}: {n} images with heatmaps" for r, n in zip(runs, pg.counts))
    snapshot_ui.markdown(f"**{pg.summary().capitalize()}** ({counts}).")
    random = [r.title() for r in runs if r.random_weights]
    if random:
        st.error(f"**Random weights: run {', '.join(random)}.** No checkpoint was loaded: its heatmaps and numbers "
                 "mean nothing, and no method is marked best.", icon=":material/warning:")
        snapshot_ui.shown_state(random_weights=random)
    if len(runs) > 1:
        snapshot_ui.markdown(f"**Settings that differ** (run {' / '.join(r.run_hash for r in runs)}): "
                             f"{crossrun.differences_text(runs)}")
    if pg.gt_problem:
        snapshot_ui.markdown(f":orange-badge[:material/warning: per-class table refused] The ground truth differs: "
                             f"{pg.gt_problem}. The pictures are shown; numbers would not compare like with like.")
    if not pg.n:
        st.error("These runs share no image (images are matched by id and size): nothing to put side by side.")
        return
    opts = crossrun.common_options(pairs)
    first = pairs[0].run
    ids = pg.ids
    top = widgets.control_row()
    top.button("Prev", icon=":material/arrow_back:", on_click=step, args=(-1, ids), key="rprev",
               help="previous shared image")
    state.coerce("rsample", ids, ids[0])
    top.selectbox("Shared image", ids, key="rsample", persist_state="session", width=200)
    top.button("Next", icon=":material/arrow_forward:", on_click=step, args=(1, ids), key="rnext",
               help="next shared image")
    j = ids.index(ss["rsample"])
    i0 = int(pg.index[0][j])
    rec = first.dataset.images[i0]
    present = [first.classes[c] for c in sorted(set(rec.labels.tolist()))]
    if ss.get("rcls") not in first.classes or (ss.get("rcls") not in present and present):
        ss["rcls"] = present[0] if present else first.classes[0]
    cls_name = top.selectbox("Class", list(first.classes), key="rcls", persist_state="session", width=260,
                             format_func=lambda n: widgets.class_label(first, first.classes.index(n), i0))
    state.coerce("rproto", opts["protocols"], opts["protocols"][0])
    proto = top.segmented_control("Protocol", opts["protocols"], key="rproto", persist_state="session",
                                  required=True, selection_mode="single") or opts["protocols"][0]
    state.coerce("rinterp", opts["interps"], opts["interps"][0])
    interp = top.segmented_control("Interpolation", opts["interps"], key="rinterp", persist_state="session",
                                   required=True, selection_mode="single",
                                   format_func=widgets.INTERP_LABELS.get) or opts["interps"][0]
    ious = opts["ious"] or [0.5]
    state.coerce("riou", ious, 0.5 if 0.5 in ious else ious[0])
    iou = float(top.select_slider("IoU threshold (table)", ious, key="riou", persist_state="session", width=190,
                                  format_func=lambda v: f"{v:g}"))
    names = crossrun.unique_names(pairs)
    snapshot_ui.shown_state(pairs=names, run_hash=", ".join(r.run_hash for r in runs), image_id=rec.image_id,
                            cls=cls_name, protocol=proto, interp=interp, iou=iou, shared_images=pg.n)
    view_iou = float(evaluation.view_iou(first.cfg))
    widgets.how(first, what=f"{pg.summary()}; each pair's boxes at its run's own box rule; red label = score, "
                "IoU with the best GT box, TP/FP; ring = pointing-game point", protocol=proto, iou=view_iou)
    _pictures(pairs, names, pg, j, cls_name, proto, view_iou)

    snapshot_ui.markdown("#### Per-class AP across runs")
    if pg.gt_problem:
        st.warning(f"**No per-class table: the ground truth differs.** {pg.gt_problem}", icon=":material/block:")
    else:
        snapshot_ui.caption(how_text(pg, proto, interp, iou))
        tbl = per_class(key, proto, interp, iou, pairs, pg)
        deltas = [c for c in tbl.columns if c.startswith("Δ ")]
        mark = not any(r.random_weights for r in runs)  # random weights: no pair is marked best
        sty = widgets.colour_scale(tbl, names, lo=0.0, best_per_row=mark)
        sty = sty.format(lambda v: "—" if v != v else f"{v:+.3f}", subset=deltas)
        sty = sty.map(lambda v: "" if v != v or v == 0 else ("color: #1b7f35" if v > 0 else "color: #c0392b"),
                      subset=deltas)
        widgets.table(sty, len(tbl), 560, shown="per-class AP across runs",
                      column_config={"class": st.column_config.TextColumn(pinned=True)})
        snapshot_ui.caption(("★ and bold: the best pair of the row (every tie; none when all are 0); " if mark else
                             "No best pair marked: a run has random weights. ")
                            + "Δ green when the pair beats the first, red when it falls behind.")
        st.download_button("Download CSV", tbl.assign(protocol=proto, interp=interp, iou=iou, shared_images=pg.n)
                           .to_csv(index=False).encode(), file_name="runs_per_class.csv", mime="text/csv",
                           icon=":material/download:", on_click="ignore", key="runs_csv")
        snapshot_ui.markdown("#### Threshold sweep")
        sw_interp = interp if interp in crossrun.SWEEP_INTERPS else crossrun.SWEEP_INTERPS[0]
        snapshot_ui.caption(f"mAP ({widgets.INTERP_LABELS[sw_interp]}, IoU >= {iou:g}, protocol {proto}) against "
                            f"the box percentile, on the {pg.n} shared images; only the percentile of each run's "
                            "box rule changes along a line.")
        widgets.chart(charts.sweep_runs(sweeps(key, proto, interp, iou, pairs, pg),
                                        f"mAP ({sw_interp}, IoU >= {iou:g})"), "runs_sweep")


def _pictures(pairs, names, pg, j: int, cls_name: str, proto: str, iou: float) -> None:
    runs = crossrun.distinct_runs(pairs)
    first = pairs[0].run
    i0 = int(pg.index[0][j])
    rec = first.dataset.images[i0]
    c0 = first.classes.index(cls_name)
    cells = [None, *range(len(pairs))]
    per_row = 3 if len(cells) > 3 else len(cells)
    for r0 in range(0, len(cells), per_row):
        for col, k in zip(st.columns(per_row), cells[r0:r0 + per_row]):
            if k is None:
                legend = f"{rec.image_id} · GT {cls_name} green, other classes white"
                snapshot_ui.image("image", render.image_with_gt(data.run_key(first), i0, c0, SIDE, first), legend,
                                  col, per_row=per_row, width="stretch", caption=legend)
                continue
            p, n = pairs[k], names[k]
            run = p.run
            i = int(pg.index[runs.index(run)][j])
            c = run.classes.index(cls_name)
            cell = Cell.of(p.method, proto, run.cfg.boxes.cut)  # each pair at its run's own box rule
            pct = cell.cut
            rkey = data.run_key(run)
            info = data.panel(rkey, cell, i, c, iou, run)
            snapshot_ui.image(n, render.overlay_jpg(rkey, cell, i, c, iou, 0.5, SIDE, run, info),
                              None, col, per_row=per_row, width="stretch")  # named in the line under it
            d = info.det
            hit = (":gray-badge[no GT]" if info.pointing_hit is None else
                   (":green-badge[pointing hit]" if info.pointing_hit else ":red-badge[pointing miss]"))
            snapshot_ui.markdown(
                f"**{n}** {hit}  \n{cut_short(pct)} · {len(d)} box{'es' if len(d) != 1 else ''}, "
                f"{int(np.sum(d.extra['tp']))} TP"
                + (f" · best IoU {info.best_iou:.2f} · energy {info.energy:.2f}" if info.energy is not None else ""),
                col, n)
    snapshot_ui.image(snapshot_ui.COLOUR_SCALE, render.colour_bar(640), width=640)
