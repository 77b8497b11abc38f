"""Per-class AP: classes x methods at one IoU, interpolation, protocol, box cut and object size; CorLoc per
class and method; PR curves; CSV; the boxes."""

import functools

import pandas as pd
import streamlit as st

from dashboard import charts, data, permalink, snapshot_ui, state, widgets
from surgery_core.eval.ap import SIZES, size_note
from surgery_core.eval.boxes import BoxRule, cut_label, cut_short, cut_tag
from surgery_core.eval.protocols import Cell
from surgery_core.run import pairs
from surgery_core.run.evaluation import CORLOC_NOTE

SIZE_OPTIONS = ["all", *SIZES]
ALL_CLASSES = "*"  # the PR curves of every class with GT, a panel each
permalink.declare(state.Param("coco95", "bool", False, "COCO AP@[.50:.95] instead of the chosen IoU"),
                  state.Param("size", "str", "all", "Per-class AP: object size (all, small, medium, large)"),
                  state.Param("prc", "str", "", "Per-class AP: class of the precision-recall curves ('*' = every "
                                                "class, a panel each; '' = the first class with GT)"),
                  state.Param("ap_sort", "str", "class", "Per-class AP: order of the rows (class, GT or a method)"))

run = data.current_run()


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    row = widgets.control_row()
    proto = widgets.protocol(run, row)
    interp = widgets.interp(run, row)
    coco95 = False
    if interp == "coco":
        state.keep("coco95")
        coco95 = row.toggle("AP@[.50:.95]", key="coco95", persist_state="session",
                            help="COCO's headline AP: the mean over IoU .50, .55, ... .95")
    iou = widgets.iou(run, row, disabled=coco95)
    p = widgets.percentile(run, row)
    state.coerce("size", SIZE_OPTIONS, "all")
    size = row.segmented_control("Object size", SIZE_OPTIONS, key="size", persist_state="session", required=True,
                                 selection_mode="single",
                                 help="COCO's buckets in px² of the original image: small <= 32², medium 32²-96², "
                                      "large >= 96². GT of other sizes is ignored, and so are detections matched "
                                      "to it and unmatched detections of other sizes (COCOeval's rule)") or "all"
    methods = widgets.methods(run)
    cells = tuple(Cell.of(m, proto, p) for m in methods)  # the boxes this page shows, one cell per method
    snapshot_ui.shown_state(cells=cells, iou=iou, interp=interp, coco95=coco95, size=size)
    widgets.how(run, what="AP per class (0-1); mAP = mean over classes with GT"
                + ("" if size == "all" else f"; {size_note(size)}"), protocol=proto, interp=interp,
                iou=iou, coco95=coco95, percentile=p)

    results = {c.method: data.ap_result(run, c, interp, iou, coco95, size) for c in cells}
    table = pairs.ap_table(results, run.classes)
    maps = {m: results[m].mAP for m in methods}
    mark = not run.random_weights  # random weights: no method is marked best
    best = max(maps, key=lambda m: -1 if maps[m] != maps[m] else maps[m]) if mark else None
    snapshot_ui.shown_numbers("mAP", {f"mAP {m}" + (" ★" if m == best else ""): maps[m] for m in methods})
    widgets.metrics({f"mAP {m}" + (" ★" if m == best else ""): "—" if maps[m] != maps[m] else f"{maps[m]:.3f}"
                     for m in methods}, helps=[widgets.METHODS[m].description for m in methods])

    hi = max(0.05, float(table[methods].max(numeric_only=True).max() or 0))
    shown = sorted_rows(table[["class", "GT", *methods]], methods)  # the boxes per method: in the CSV
    sty = widgets.colour_scale(shown, methods, lo=0.0, hi=hi, best_per_row=mark)
    widgets.table(sty, len(shown), shown="AP per class")  # plain HTML: every row, no canvas grid to draw
    snapshot_ui.caption(("★ and bold: the best method of the row (every tie; none when all are 0). " if mark else
                         "No method is marked best: random weights. ")
                        + "GT: ground-truth boxes of the class. Three decimals, <0.001 below that; the CSV has the "
                          "exact values and the boxes each method predicted per class.")
    iou_txt = "50-95" if coco95 and interp == "coco" else f"{iou:g}"
    csv = table.assign(protocol=proto, interp=interp, iou=iou_txt, percentile=None if isinstance(p, BoxRule) else p,
                       box_rule=cut_label(p), size=size, run=run.run_hash)
    buttons = st.container(horizontal=True)
    buttons.download_button("Download CSV", csv.to_csv(index=False).encode(), icon=":material/download:",
                            file_name=f"ap_{run.run_hash}_{proto}_{interp}_iou{iou_txt}_{cut_tag(p)}"
                                      + ("" if size == "all" else f"_{size}") + ".csv", mime="text/csv")
    buttons.download_button(
        "Download the boxes (COCO + CSV, zip)", functools.partial(data.boxes_zip, data.run_key(run), cells, run),
        icon=":material/download:", file_name=f"boxes_{run.run_hash}_{proto}_{cut_tag(p)}.zip",
        mime="application/zip",
        help=f"every image's predicted boxes of {', '.join(methods)} ({proto} protocol, {cut_short(p)}) as COCO "
             "results JSON and the CSV 'surgery score' reads, with the COCO ground truth: scoring them gives these "
             "AP values for all object sizes (surgery score --coco ground_truth.json --detections FILE)")

    corloc_view(cells, 0.5 if coco95 and interp == "coco" else iou)

    pr_view(results, cells, interp, iou, coco95, size)
    permalink.sync_url()


def pr_view(results: dict, cells: tuple[Cell, ...], interp: str, iou: float, coco95: bool, size: str) -> None:
    """The precision-recall curves of one class, or of every class with GT (a panel each: twenty panels of a
    line per method took most of this page's drawing time in the browser, so they are drawn when asked for)."""
    proto, p = cells[0].protocol.name, cells[0].cut
    n_gt = results[cells[0].method].n_gt
    with_gt = [run.classes[k] for k in range(len(run.classes)) if n_gt[k] > 0]
    snapshot_ui.markdown("#### Precision-recall")
    if not with_gt:
        snapshot_ui.caption("No class has ground truth of this object size: no curve to draw.")
        return
    opts = [*with_gt, ALL_CLASSES]
    state.coerce("prc", opts, with_gt[0])
    which = st.selectbox("Curves of", opts, key="prc", persist_state="session", width=260,
                           format_func=lambda n: f"all {len(with_gt)} classes, a panel each" if n == ALL_CLASSES
                           else f"{n} (GT {int(n_gt[run.classes.index(n)])})",
                           help="one class (quick to draw), or every class with ground truth in small multiples")
    snapshot_ui.shown_state(pr_class=which)
    widgets.how(run, what=("curves after each detection in descending score order, drawn through every corner of "
                           "the step curve" if interp != "coco" else
                           "COCO interpolated precision at 101 recall levels" + (" (IoU .50 shown)" if coco95 else ""))
                + ("" if which == ALL_CLASSES else f"; class {which}"),
                interp=interp, iou=iou, protocol=proto, percentile=p)
    only = None if which == ALL_CLASSES else (run.classes.index(which),)
    widgets.chart(lambda: charts.pr_curves(results, run.classes, only=only), "pr",
                  memo=(data.run_key(run), cells, interp, iou, coco95, size, which))


SORTS = {"class": "class (DIOR order)", "GT": "GT boxes, most first"}


def sorted_rows(shown, methods: list[str]):
    """The AP table's class rows in the order the user picks (class order, most GT first, or a method's AP, best
    first; undefined AP last), its mAP row last."""
    opts = [*SORTS, *methods]
    state.coerce("ap_sort", opts, "class")
    by = st.selectbox("Rows in order of", opts, key="ap_sort", persist_state="session", width=240,
                      format_func=lambda c: SORTS.get(c) or f"AP of {c}, best first")
    if by == "class":
        return shown
    body = shown.iloc[:-1].sort_values(by, ascending=False, kind="stable", na_position="last")
    return pd.concat([body, shown.iloc[-1:]])


def corloc_view(cells: tuple[Cell, ...], iou: float) -> None:
    """CorLoc per class and method of the page's cells (one per method, the page's protocol and cut) at the page's
    IoU (0.5 under COCO's .50:.95)."""
    methods, proto, p = [c.method for c in cells], cells[0].protocol.name, cells[0].cut
    snapshot_ui.markdown(f"#### CorLoc at IoU {iou:g}")
    widgets.how(run, what=CORLOC_NOTE + " (all object sizes; the interpolation does not apply)", protocol=proto,
                iou=iou, percentile=p)
    res = {c.method: data.corloc_result(run, c, iou) for c in cells}
    snapshot_ui.shown_numbers("CorLoc", {f"CorLoc {m}": float(res[m].mean[0]) for m in methods})
    widgets.metrics({f"CorLoc {m}": "—" if res[m].mean[0] != res[m].mean[0] else f"{res[m].mean[0]:.4f}"
                     for m in methods}, helps=[widgets.METHODS[m].description for m in methods])
    table = pairs.corloc_table(res, run.classes)
    sty = widgets.colour_scale(table, methods, lo=0.0, hi=1.0, best_per_row=True)
    widgets.table(sty, len(table), 820, shown="CorLoc per class")


view()
