"""Browse: every sample as a thumbnail with its GT boxes; filter by class, object count and outcome; open one
in Compare."""

import math

import numpy as np
import streamlit as st

from dashboard import data, permalink, render, snapshot_ui, state, widgets
from surgery_core.eval.protocols import Cell

permalink.declare(
    state.Param("q", "str", "", "Browse: image id search"),
    state.Param("bcls", "list", lambda c: [], "Browse: classes present"),
    state.Param("bn", "range", (0, 0), "Browse: object count range (0-0 = any)"),
    state.Param("bout", "str", "all", "Browse: outcome filter"),
    state.Param("bm", "str", lambda c: state.seed_first(c.methods)[-1] if c.methods else "",
                "Browse: method for the outcome filter"),
    state.Param("bpage", "int", 1, "Browse: page number"),
    state.Param("bsize", "str", "medium", "Browse: thumbnail size"),
)

OUTCOMES = {
    "all": "every sample",
    "miss": "no TP on a GT class",
    "pg": "pointing-game miss",
    "either": "either failure",
}
#: thumbnail sizes: (thumbnails per row, drawn px); PAGE thumbnails a page at every size
SIZES = {"small": (8, 200), "medium": (4, 320), "large": (3, 440)}
PAGE = 24

run = data.current_run()
key = data.run_key(run)
rows = run.grids.rows
recs = run.dataset.images


def open_in_compare(image_id: str, cls_name: str | None) -> None:
    st.session_state["sample"] = image_id
    if not cls_name:
        labels = recs[run.dataset.index_of(image_id)].labels
        cls_name = run.classes[int(labels.min())] if len(labels) else None
    if cls_name:
        st.session_state["cls"] = cls_name
    st.session_state["_goto"] = "compare"


def filtered_images(q: str, classes: list[str], n_range) -> np.ndarray:
    keep = []
    want = {run.classes.index(c) for c in classes}
    for i in rows.tolist():
        r = recs[i]
        if q and q.lower() not in r.image_id.lower():
            continue
        if want and not want <= set(r.labels.tolist()):
            continue
        if n_range and not n_range[0] <= r.num_objects <= n_range[1]:
            continue
        keep.append(i)
    return np.asarray(keep, np.int64)


def outcome_order(images: np.ndarray, kind: str, cell: Cell, iou: float, classes: list[str]):
    """Images with a failed (class) pair of the cell's boxes, worst best-IoU first, and a caption per image."""
    df = data.pair_outcomes(key, cell, iou, run)
    df = df[df["image"].isin(images)]
    if classes:
        df = df[df["class"].isin(classes)]
    bad = {"miss": df["n_tp"] == 0, "pg": ~df["pointing_hit"].astype(bool),
           "either": (df["n_tp"] == 0) | ~df["pointing_hit"].astype(bool)}[kind]
    df = df[bad].sort_values(["best_iou", "image"])
    captions, first_class = {}, {}
    for img, g in df.groupby("image", sort=False):
        first_class[img] = g["class"].iloc[0]
        captions[img] = " · ".join(
            f"{r['class']} IoU {r.best_iou:.2f}, {r.n_tp}/{r.n_gt} TP" + ("" if r.pointing_hit else ", PG miss")
            for _, r in g.head(2).iterrows())
    order = df.drop_duplicates("image")["image"].to_numpy()
    return order, captions, first_class


def map_class(rec, classes: list[str]) -> int:
    """The class whose heatmap a thumbnail shows when no failure names one: the first filtered class the image
    has, else its most frequent GT class."""
    have = rec.labels.tolist()
    for c in classes:
        if run.classes.index(c) in have:
            return run.classes.index(c)
    return int(np.bincount(rec.labels).argmax()) if len(have) else 0


def thumbnails(shown, classes: list[str], captions: dict, first_class: dict, method: str | None, per_row: int,
               side: int) -> None:
    """The grid: each sample with its GT boxes (those of the failed class, or of the filtered classes), over
    ``method``'s heatmap of that class when given."""
    sel = tuple(run.classes.index(c) for c in classes)
    for r0 in range(0, len(shown), per_row):
        for col, i in zip(st.columns(per_row), shown[r0:r0 + per_row].tolist()):
            rec, fc = recs[i], first_class.get(i)
            shows = None  # the class whose heatmap the thumbnail shows
            if fc:
                k = (run.classes.index(fc),)
                img = render.thumbnail(key, i, side, k, run, method or "", k[0] if method else -1)
                shows = fc if method else None
            elif method:
                shows = run.classes[map_class(rec, classes)]
                img = render.thumbnail(key, i, side, sel, run, method, run.classes.index(shows))
            else:
                img = render.thumbnail(key, i, side, sel, run)
            with col.container(border=True):
                snapshot_ui.image(rec.image_id, img, rec.image_id, per_row=per_row, framed=True,
                                  width="stretch")
                names = sorted({run.classes[c] for c in rec.labels})
                snapshot_ui.caption((captions.get(i) or f"{rec.num_objects} object"
                                     f"{'s' * (rec.num_objects != 1)}: " + ", ".join(names))
                                    + (f" · heatmap: {shows}" if shows else ""), name=rec.image_id)
                st.button(rec.image_id, key=f"open_{i}", icon=":material/open_in_new:", width="stretch",
                          on_click=open_in_compare, args=(rec.image_id, fc or (classes[0] if classes else None)),
                          help="open in Compare")


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    n_objects = [recs[i].num_objects for i in rows.tolist()] or [0]
    lo, hi = int(min(n_objects)), int(max(n_objects))
    state.set_default("bn", (lo, hi))
    c = [widgets.control_row()] * 5
    state.keep("q")
    q = c[0].text_input("Image id contains", key="q", persist_state="session", width=130)
    state.coerce("bcls", list(run.classes))
    classes = c[1].multiselect("Has every class", list(run.classes), key="bcls", persist_state="session", width=200)
    n_range = None
    if hi > lo:
        v = st.session_state.get("bn")
        st.session_state["bn"] = tuple(v) if v and lo <= v[0] <= v[1] <= hi else (lo, hi)
        n_range = c[2].slider("Objects per image", lo, hi, key="bn", persist_state="session", width=160)
    state.coerce("bout", list(OUTCOMES))
    kind = c[3].selectbox("Outcome", list(OUTCOMES), key="bout", format_func=OUTCOMES.get, persist_state="session",
                          width=180,
                          help="Samples where a method failed on a class it should find: no true positive at the "
                               "IoU threshold (greedy matching over the run, as AP counts it) or the map's "
                               "maximum outside every GT box of the class (pointing game). Worst IoU first.")
    method = widgets.method_one(run, "bm", c[4], width=150)
    images = filtered_images(q, classes, n_range)
    captions, first_class = {}, {}
    snapshot_ui.shown_state(query=q, classes=classes, objects=list(n_range) if n_range else None, outcome=kind)
    if kind == "all":
        snapshot_ui.shown_state(methods=[method])
    else:
        k = widgets.control_row()
        p, iou, proto = widgets.percentile(run, k), widgets.iou(run, k), widgets.protocol(run, k)
        cell = Cell.of(method, proto, p)  # the boxes the outcomes are counted on
        snapshot_ui.shown_state(cells=(cell,), iou=iou)
        widgets.how(run, what="outcome per (sample, GT class); IoU = best IoU of any predicted box",
                    method=method, protocol=proto, iou=iou, percentile=p)
        images, captions, first_class = outcome_order(images, kind, cell, iou, classes)

    state.coerce("bsize", list(SIZES))
    per_row, side = SIZES[st.session_state["bsize"]]
    pages = max(1, math.ceil(len(images) / PAGE))
    state.coerce("bpage", list(range(1, pages + 1)), 1)
    head = st.columns([1.2, 2.4, 1.5, 4.5], vertical_alignment="center")
    head[0].number_input("Page", 1, pages, key="bpage", persist_state="session", label_visibility="collapsed")
    snapshot_ui.shown_state(page_number=st.session_state["bpage"])
    head[1].segmented_control("Thumbnail size", list(SIZES), key="bsize", persist_state="session", required=True,
                              label_visibility="collapsed", help="thumbnails per row: small 8, medium 4, large 3")
    st.session_state["bheat"] = st.session_state.get("bheat", kind != "all")  # first use: on for failures
    heat = head[2].toggle("Heatmaps", key="bheat",
                          help=f"thumbnails over the {method} heatmap (the method picked above) of the failed class "
                               "(Outcome filter), else of the first filtered class the sample has, else of its most "
                               "frequent class; jet colours: red high, blue low")
    snapshot_ui.markdown(f"page of {pages} · **{len(images)}** of {len(rows)} samples"
                         + (" · sorted by worst IoU first" if kind != "all" else ""), head[3])
    start = (st.session_state["bpage"] - 1) * PAGE
    shown = images[start:start + PAGE]
    if heat and len(shown):
        snapshot_ui.image(snapshot_ui.COLOUR_SCALE, render.colour_bar(640), width=640)
    thumbnails(shown, classes, captions, first_class, method if heat else None, per_row, side)
    if not len(shown):
        st.info("No sample matches these filters.")
    permalink.sync_url()
    if st.session_state.pop("_goto", None) == "compare":
        st.switch_page("views/compare.py")


view()
