"""Compare: one sample, one class, every heatmap method side by side as the seed drew them."""

import functools

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, inspector, permalink, render, snapshot_ui, state, widgets
from surgery_core.errors import InputError
from surgery_core.eval.boxes import cut_short, cut_tag
from surgery_core.eval.protocols import Cell
from surgery_core.run import explore

permalink.declare(state.Param("cols", "int", 3, "Compare: pictures per row"))

run = data.current_run()
key = data.run_key(run)
rows = run.grids.rows.tolist()
ids = [run.dataset.images[i].image_id for i in rows]
index_of = {s: i for s, i in zip(ids, rows)}
PER_ROW = [2, 3, 4, 5, 6]


def present_classes(image: int) -> list[int]:
    return sorted(set(run.dataset.images[image].labels.tolist()))


def step(delta: int) -> None:
    """Previous/next sample; keep the class when the new sample has it, else its first GT class."""
    ss = st.session_state
    pos = ids.index(ss["sample"]) if ss.get("sample") in index_of else 0
    ss["sample"] = ids[(pos + delta) % len(ids)]
    pick_class(force=False)


def pick_class(force: bool = False) -> None:
    ss = st.session_state
    if ss.get("sample") not in index_of:  # a typed id that is not in the run: settle_view says so
        return
    present = present_classes(index_of[ss["sample"]])
    if present and (force or ss.get("cls") not in [run.classes[c] for c in present]):
        ss["cls"] = run.classes[present[0]]


def settle_view() -> list[str]:
    """Make the sample and the class ones this run can show; notes for every carried-over choice that could not
    be honoured (a sample not in this run, a class without ground truth in the sample shown)."""
    ss = st.session_state
    notes = []
    wanted = ss.get("sample")
    sample = state.coerce("sample", ids)
    if wanted and wanted != sample:
        notes.append(f"Sample {wanted} is not in run {run.run_hash}; showing {sample}, its first sample.")
    present = [run.classes[c] for c in present_classes(index_of[sample])]
    here = (run.run_hash, sample)
    chosen, cls = ss.get("_cls_for"), ss.get("cls")
    if ss.pop("_url_has_cls", False) and chosen is None and cls in run.classes and wanted == sample:
        chosen = here  # a link names its sample and class: shown as the link says, present or not
    if cls not in run.classes or (chosen != here and cls not in present and present):
        ss["cls"] = present[0] if present else run.classes[0]
        if cls:
            why = "is not a class of this run" if cls not in run.classes else f"has no ground truth in {sample}"
            notes.append(f"Class {cls} (from the previous view) {why}; showing {ss['cls']}, "
                         + ("its first annotated class." if present else "the run's first class."))
    ss["_cls_for"] = here
    return notes


def chose_class() -> None:
    st.session_state["_cls_for"] = (run.run_hash, st.session_state.get("sample"))


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    for note in settle_view():
        st.info(note, icon=":material/swap_horiz:")
    top = widgets.control_row()
    top.button("Prev", icon=":material/arrow_back:", on_click=step, args=(-1,), help="previous sample", key="prev")
    if len(ids) <= 5000:
        top.selectbox("Sample", ids, key="sample", persist_state="session", on_change=pick_class, width=200,
                      help="image id; Browse finds samples by class, count and outcome")
    else:
        top.text_input("Sample (image id)", key="sample", on_change=pick_class, width=200)
    top.button("Next", icon=":material/arrow_forward:", on_click=step, args=(1,), help="next sample", key="next")
    image = index_of[st.session_state["sample"]]
    rec = run.dataset.images[image]
    cls_name = top.selectbox("Class", list(run.classes), key="cls", persist_state="session", on_change=chose_class,
                             width=280, format_func=lambda n: widgets.class_label(run, run.classes.index(n), image))
    cls = run.classes.index(cls_name)
    state.coerce("cols", PER_ROW)
    per_row = top.selectbox("Pictures per row", PER_ROW, key="cols", persist_state="session", width=150,
                               help="pictures per row (fewer: larger pictures, readable box labels)")
    methods = widgets.methods(run)

    ctl = widgets.control_row()
    p = widgets.percentile(run, ctl)
    iou = widgets.iou(run, ctl)
    proto = widgets.protocol(run, ctl)
    state.coerce("alpha", [round(x * 0.05, 2) for x in range(21)], 0.5)
    alpha = ctl.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="alpha", persist_state="session", width=180)
    state.keep("raw")
    raw = ctl.toggle("Patch grid", key="raw", persist_state="session", help="the raw similarity per patch")
    cells = {m: Cell.of(m, proto, p) for m in methods}  # the boxes each panel shows
    snapshot_ui.shown_state(image_index=image, class_index=cls, cells=tuple(cells.values()), iou=iou, alpha=alpha)

    row = run.row_of(image)
    probs = run.grids.probs[row]
    top3 = np.argsort(-probs)[:3]
    gt_counts = pd.Series([run.classes[c] for c in rec.labels]).value_counts()
    snapshot_ui.markdown(
        f"**{rec.image_id}** · {rec.width}x{rec.height} px · GT: "
        + (", ".join(f"{n} x{c}" for n, c in gt_counts.items()) or "none")
        + f" · **p({cls_name} | image) = {probs[cls]:.3f}** · CLS top: "
        + ", ".join(f"{run.classes[c]} {probs[c]:.2f}" for c in top3))
    widgets.how(run, what="red label = s box score, IoU with the best GT box of the class, TP/FP (a label that "
                "would cover another is left out: the table below lists every box); ring = pointing-game point "
                f"(green hit, red miss, {run.cfg.pointing_tolerance_px_at_224:g} px at 224 tolerance)",
                protocol=proto, iou=iou, percentile=p)

    side = 400 if per_row >= 3 else 560  # drawn near the displayed size, so that box labels stay legible
    present = bool((rec.labels == cls).any())
    legend = (f"image · GT {cls_name} green, other classes white" if present else
              f"image · no GT box of {cls_name} here; other classes white")
    slots = [None, *methods]  # the image, then one picture per method
    panels = {}
    for r0 in range(0, len(slots), per_row):
        for col, m in zip(st.columns(per_row), slots[r0:r0 + per_row]):
            if m is None:
                snapshot_ui.image("image", render.image_with_gt(key, image, cls, side, run), legend, col,
                                  per_row=per_row, width="stretch", caption=legend)
                col.download_button(
                    "PNG", functools.partial(render.image_panel_png, key, image, cls, side,
                                             f"{rec.image_id}: {cls_name}", legend, run),
                    file_name=f"{rec.image_id}_{cls_name}_image.png", mime="image/png", key="png_image",
                    icon=":material/download:", help="this panel as drawn, with its title, as one PNG")
                continue
            panels[m] = info = data.panel(key, cells[m], image, cls, iou, run)
            snapshot_ui.image(m, render.overlay_jpg(key, cells[m], image, cls, iou, alpha, side, run, info),
                              None, col, per_row=per_row, width="stretch")  # its words follow, as on screen
            d = info.det
            hit = (":gray-badge[no GT: no pointing game]" if info.pointing_hit is None else
                   (":green-badge[pointing hit]" if info.pointing_hit else ":red-badge[pointing miss]"))
            absent = " · class absent" + ("" if cells[m].protocol.all_classes else f" ({proto} protocol: no boxes)")
            snapshot_ui.markdown(
                f"**{m}** {hit}  \n{len(d)} box{'es' if len(d) != 1 else ''}, {int(d.extra['tp'].sum())} TP"
                + (f" · best IoU {info.best_iou:.2f} · energy {info.energy:.2f}" if info.energy is not None
                   else absent), col, m)
            snapshot_ui.caption(widgets.METHODS[m].description, col, m)
            title = (f"{m}: {len(d)} box{'es' if len(d) != 1 else ''}, {int(d.extra['tp'].sum())} TP"
                     + ("" if info.best_iou is None else f", best IoU {info.best_iou:.2f}")
                     + ("" if info.pointing_hit is None else
                        ", pointing hit" if info.pointing_hit else ", pointing miss"))
            note = (f"{rec.image_id} ({run.dataset.name}), class {cls_name}; {proto} protocol, boxes at "
                    f"{cut_short(p)} of the map, TP at IoU >= {iou:g}; labels: score, IoU, TP/FP; heatmap opacity "
                    f"{alpha:g}")
            col.download_button(
                "PNG", functools.partial(render.method_panel_png, key, cells[m], image, cls, iou, alpha, side,
                                         title, note, run, info),
                file_name=f"{rec.image_id}_{cls_name}_{m}_{proto}_{cut_tag(p)}.png", mime="image/png", key=f"png_{m}",
                icon=":material/download:", help="this panel as drawn (heatmap, boxes, colour scale, title), "
                                                 "as one PNG")
            if raw:
                widgets.chart(charts.patch_grid(info.grid, rec, cls, m), f"grid_{m}", col)
    if alpha > 0:
        snapshot_ui.image(snapshot_ui.COLOUR_SCALE, render.colour_bar(640), width=640)
    st.download_button(
        "Download the figure (PNG)", functools.partial(render.comparison_png, key, tuple(cells.values()), image, cls,
                                                       iou, alpha, run),
        file_name=f"{rec.image_id}_{cls_name}_{proto}_{cut_tag(p)}_compare.png", mime="image/png", key="png_compare",
        icon=":material/download:", help="the image and every method shown, one colour bar and a heading that "
                                         "says how boxes were cut and matched, as one PNG (the report's figure)")

    cfg = run.cfg
    try:
        res = explore.Resolution.check(cfg.input.size or run.loaded.image_size, cfg.input.window, cfg.input.stride,
                                       run.loaded.patch_size)
    except InputError:  # a run beyond the inspector's one-pass limits (e.g. a huge input without windows)
        res = None
    if res is not None:
        inspector.show(run.loaded, run.image(image), res, cfg.surgery_depth, methods, cfg.input.posembed, "c_insp")
    if st.toggle("Table of every predicted box", key="boxtable"):
        table = pd.concat([pd.DataFrame({
            "method": m, "x1": i.det.xyxy[:, 0], "y1": i.det.xyxy[:, 1], "x2": i.det.xyxy[:, 2],
            "y2": i.det.xyxy[:, 3], "score": i.det.score, "IoU": i.det.extra["iou"],
            "TP": i.det.extra["tp"]}) for m, i in panels.items()], ignore_index=True)
        widgets.table(table, len(table), 420, shown="every predicted box",
                      column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("score", "IoU")})
    permalink.sync_url()


view()
