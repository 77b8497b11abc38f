"""Heatmap quality: the seed's per-percentile table, GT responses, pointing game and energy pointing game, CorLoc,
and the ground truth's object-size mix."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data, permalink, snapshot_ui, widgets
from surgery_core.eval.ap import AREA_RANGES, SIZES, size_counts

run = data.current_run()
data.ensure(run, "quality")
data.ensure(run, "corloc")
quality = run.quality()
corloc = run.corloc()
key = data.run_key(run)


@widgets.fragment
def view() -> None:
    snapshot_ui.begin()
    methods = widgets.methods(run)
    snapshot_ui.shown_state(methods=methods)
    qm = {m: quality.methods[m] for m in methods}
    snapshot_ui.caption(
        f"{qm[methods[0]].n_pairs} (sample, GT class) pairs per method · maps min-max normalised and "
        f"upsampled to the box working map ({run.cfg.boxes.box_resolution or 'image size'} px) · boxes cut "
        "as under Per-class AP, present protocol")

    snapshot_ui.markdown("#### Boxes per heatmap percentile")
    rows = quality.to_frame().rename(columns={
        "mean_best_iou": "mean best IoU", "max_best_iou": "max best IoU", "mean_n_boxes": "boxes / (sample, class)",
        "mean_activation_ratio": "activation ratio"})
    table = rows[rows["method"].isin(methods)].set_index("method").loc[methods].reset_index()
    widgets.how(run, what="best IoU = largest IoU of any box with any GT box of the class in the sample; "
                "activation ratio = share of map pixels >= the threshold (before morphology); the percentile of "
                "each row replaces the run's", percentile=run.cfg.boxes.percentile)
    sty = widgets.colour_scale(table, ["mean best IoU", "max best IoU"], lo=0.0)
    sty = sty.format("{:.2f}", subset=["boxes / (sample, class)"]).format("{:.3f}", subset=["activation ratio"])
    # every row at once (no inner scroll bar that hides the last methods): the page scrolls instead
    widgets.table(sty.format("p{:g}", subset=["percentile"]), len(table), cap=10_000,
                  shown="boxes per heatmap percentile")
    ps = quality.percentiles
    shown = (key, tuple(methods))  # what every chart of this page depends on
    widgets.chart(lambda: charts.lines(ps, {m: [r["mean_best_iou"] for r in qm[m].by_percentile] for m in methods},
                                       "heatmap percentile", "mean best-box IoU"), "q_lines", memo=shown)

    snapshot_ui.markdown("#### Response inside ground-truth boxes")
    snapshot_ui.caption(
        f"Units: {quality.gt_response_units}; per pair the mean and the max of the map inside the "
        "union of the class's GT boxes; mean ± std over pairs (population std).")
    gt = pd.DataFrame([{"method": m, "GT mean": f"{g['mean_mean']:.4f} ± {g['mean_std']:.4f}",
                        "GT max": f"{g['max_mean']:.4f} ± {g['max_std']:.4f}"}
                       for m in methods if (g := qm[m].gt_response)["mean_mean"] is not None])
    widgets.table(gt, len(gt), shown="response inside GT boxes")
    def frames():
        return {m: data.pair_quality(key, m, run) for m in methods}

    a, b = st.columns(2)
    widgets.chart(lambda: charts.distributions(frames(), "gt_mean", "mean response in GT boxes"), "d_mean", a,
                  memo=shown)
    widgets.chart(lambda: charts.distributions(frames(), "gt_max", "max response in GT boxes"), "d_max", b,
                  memo=shown)

    snapshot_ui.markdown("#### Pointing game and energy pointing game")
    snapshot_ui.caption(
        f"Pointing game: hit when the map's maximum lies within {quality.tolerance_px_at_224:g} px (on a "
        "224 px scale) of a GT box of the class. Energy: share of the 0-1 map's mass inside the class's GT "
        "boxes. Per class over its pairs; 'overall' over all pairs; 'mean' over classes.")
    classes = [n for n in run.classes if n in qm[methods[0]].pointing_game["per_class"]]
    pg = np.array([[qm[m].pointing_game["per_class"][n]["accuracy"] for m in methods] for n in classes], float)
    en = np.array([[qm[m].energy_pointing_game["per_class"][n]["mean"] for m in methods] for n in classes], float)
    a, b = st.columns(2)
    widgets.chart(lambda: charts.class_method_heatmap(pg, classes, methods, "pointing-game accuracy"), "pg", a,
                  memo=shown)
    widgets.chart(lambda: charts.class_method_heatmap(en, classes, methods, "energy share in GT boxes",
                                                      zrange=None), "epg", b, memo=shown)
    games = {"pointing": "pointing_game", "energy": "energy_pointing_game"}
    summary = pd.DataFrame({"method": methods, "pairs": [qm[m].n_pairs for m in methods]}
                           | {f"{g} {agg.replace('_', ' ')}": [getattr(qm[m], k)[agg] for m in methods]
                              for g, k in games.items() for agg in ("overall", "mean_over_classes")})
    widgets.table(widgets.colour_scale(summary, list(summary.columns[2:]), lo=0.0, hi=1.0), len(summary),
                  shown="pointing games")
    corloc_section(methods)
    size_mix()
    permalink.sync_url()


def corloc_section(methods: list[str]) -> None:
    """The run's CorLoc table (``corloc.json``): mean over classes per method and protocol at each tabled IoU."""
    snapshot_ui.markdown("#### CorLoc")
    snapshot_ui.caption(f"{corloc.note}. {corloc.box_note}. Present and open agree: the open protocol scales every "
                        "box of an (image, class) by the same probability, so the top box is the same. Per class "
                        "and at any IoU: the Per-class AP page.")
    keys = list(next(iter(corloc.entries.values())).values())[0].corloc
    rows = pd.DataFrame([{"method": m, "protocol": pr} | {f"IoU {k}": corloc.entry(m, pr).corloc[k] for k in keys}
                         for m in methods for pr in run.cfg.protocols])
    snapshot_ui.shown_numbers("CorLoc@0.5", {f"CorLoc {m}": corloc.entry(m, run.cfg.protocols[0]).corloc["0.5"]
                                             for m in methods})
    widgets.table(widgets.colour_scale(rows, [f"IoU {k}" for k in keys], lo=0.0, hi=1.0), len(rows), shown="CorLoc")


def size_mix() -> None:
    """Ground-truth boxes per class and COCO size bucket (what AP by object size is computed over)."""
    snapshot_ui.markdown("#### Object sizes in the ground truth")
    lo, hi = AREA_RANGES["medium"]
    snapshot_ui.caption(f"Boxes per class in COCO's buckets, box area in px² of the original image: small <= {lo:g} "
                        f"(32²), medium {lo:g}-{hi:g}, large >= {hi:g} (96²); a box of exactly 32² or 96² counts "
                        "in "
                        f"both of its buckets, as in COCOeval. {len(run.grids.rows)} images of {run.dataset.name}. "
                        "AP per size: the Per-class AP page's 'Object size'.")
    counts = size_counts(run.gt, len(run.classes))
    mix = pd.DataFrame({"class": list(run.classes)} | {s: counts[i] for i, s in enumerate(SIZES)})
    mix = mix[mix[list(SIZES)].sum(axis=1) > 0].reset_index(drop=True)
    total = {"class": "all classes"} | {s: int(mix[s].sum()) for s in SIZES}
    mix = pd.concat([mix, pd.DataFrame([total])], ignore_index=True)
    shares = mix[list(SIZES)].div(mix[list(SIZES)].sum(axis=1).clip(lower=1), axis=0)
    for s in SIZES:
        mix[f"{s} %"] = 100 * shares[s]
    sty = widgets.colour_scale(mix, [f"{s} %" for s in SIZES], lo=0.0, hi=100.0, fmt="{:.0f}")
    widgets.table(sty, len(mix), cap=10_000, shown="object-size mix")


view()
