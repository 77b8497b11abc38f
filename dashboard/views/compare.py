"""Compare: one sample, one class, every heatmap method side by side as the seed drew them."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, render, snapshot_ui, state, widgets

run = data.current_run()
key = data.run_key(run)
rows = run.grids.rows.tolist()
ids = [run.dataset.images[i].image_id for i in rows]
index_of = {s: i for s, i in zip(ids, rows)}


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
    present = present_classes(index_of[ss["sample"]])
    if present and (force or ss.get("cls") not in [run.classes[c] for c in present]):
        ss["cls"] = run.classes[present[0]]


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    state.coerce("sample", ids)
    if st.session_state.get("cls") not in run.classes:
        pick_class(force=True)
    top = st.columns([0.75, 2.0, 0.75, 2.0, 3.4], vertical_alignment="bottom")
    top[0].button("Prev", icon=":material/arrow_back:", on_click=step, args=(-1,), help="previous sample", key="prev")
    if len(ids) <= 5000:
        top[1].selectbox("Sample", ids, key="sample", persist_state="session", on_change=pick_class,
                         help="image id; Browse finds samples by class, count and outcome")
    else:
        top[1].text_input("Sample (image id)", key="sample", on_change=pick_class)
    top[2].button("Next", icon=":material/arrow_forward:", on_click=step, args=(1,), help="next sample", key="next")
    image = index_of[st.session_state["sample"]]
    rec = run.dataset.images[image]
    cls_name = top[3].selectbox("Class", list(run.classes), key="cls", persist_state="session",
                                format_func=lambda n: widgets.class_label(run, run.classes.index(n), image))
    cls = run.classes.index(cls_name)
    methods = widgets.methods(run, top[4])

    ctl = st.columns([2.4, 1.8, 1.4, 1.6, 1.0], vertical_alignment="bottom")
    p = widgets.percentile(run, ctl[0])
    iou = widgets.iou(run, ctl[1])
    proto = widgets.protocol(run, ctl[2])
    state.coerce("alpha", [round(x * 0.05, 2) for x in range(21)], 0.5)
    alpha = ctl[3].slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="alpha", persist_state="session")
    state.keep("raw")
    raw = ctl[4].toggle("Patch grid", key="raw", persist_state="session", help="the raw similarity per patch")
    snapshot_ui.shown_state(image_index=image, class_index=cls, methods=methods, percentile=p, iou=iou, protocol=proto,
                            alpha=alpha)

    row = run.row_of(image)
    probs = run.grids.probs[row]
    top3 = np.argsort(-probs)[:3]
    gt_counts = pd.Series([run.classes[c] for c in rec.labels]).value_counts()
    st.markdown(snapshot_ui.shown_markdown(
        f"**{rec.image_id}** · {rec.width}x{rec.height} px · GT: "
        + (", ".join(f"{n} x{c}" for n, c in gt_counts.items()) or "none")
        + f" · **p({cls_name} | image) = {probs[cls]:.3f}** · CLS top: "
        + ", ".join(f"{run.classes[c]} {probs[c]:.2f}" for c in top3)))
    widgets.how(run, what="red label = box score, its IoU with the best GT box, TP/FP; ring = pointing-game point "
                "(green hit, red miss, 15 px at 224 tolerance)", protocol=proto, iou=iou, percentile=p)

    side = 400
    cols = st.columns(len(methods) + 1)
    legend = f"image · GT {cls_name} green, other classes white"
    cols[0].image(snapshot_ui.shown_image("image", render.image_with_gt(key, image, cls, side, run), legend),
                  width="stretch", caption=legend)
    panels = {}
    for col, m in zip(cols[1:], methods):
        info = data.panel(key, m, image, cls, p, proto, iou, run)
        panels[m] = info
        col.image(snapshot_ui.shown_image(m, render.overlay_jpg(key, image, cls, m, p, proto, iou, alpha, side, run,
                                                                info), widgets.METHODS[m].description),
                  width="stretch")
        d = info.det
        hit = ("—" if info.pointing_hit is None else
               (":green-badge[pointing hit]" if info.pointing_hit else ":red-badge[pointing miss]"))
        col.markdown(snapshot_ui.shown_markdown(f"**{m}** {hit}  \n{len(d)} box{'es' if len(d) != 1 else ''}, "
                                                f"{int(d.extra['tp'].sum())} TP"
                     + (f" · best IoU {info.best_iou:.2f} · energy {info.energy:.2f}" if info.energy is not None
                        else " · class absent"), m))
        col.caption(widgets.METHODS[m].description)
        if raw:
            widgets.chart(charts.patch_grid(info.grid, rec, cls, m), f"grid_{m}", col)

    if st.toggle("Table of every predicted box", key="boxtable"):
        table = pd.concat([pd.DataFrame({
            "method": m, "x1": i.det.xyxy[:, 0], "y1": i.det.xyxy[:, 1], "x2": i.det.xyxy[:, 2],
            "y2": i.det.xyxy[:, 3], "score": i.det.score, "IoU": i.det.extra["iou"],
            "TP": i.det.extra["tp"]}) for m, i in panels.items()], ignore_index=True)
        widgets.table(snapshot_ui.shown_table("every predicted box", table), len(table), 420,
                      column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("score", "IoU")})
    state.sync_url()


view()
