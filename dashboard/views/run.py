"""Run: what was computed, from what, the headline mAP table of the run's own box settings, and the run's
self-contained report (one HTML file, or a .zip with its numbers) to download."""

import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard import data, permalink, snapshot_ui, widgets
from surgery_core.errors import SurgeryError
from surgery_core.eval.results import COCO_50_95, MEAN_OVER_IOUS
from surgery_core.run.evaluation import INTERP_NOTES, PROTOCOL_NOTES, view_iou
from surgery_core.share import bundle
from surgery_core.share import html as report_html
from surgery_core.share.report import main_class

MAX_SAMPLE_OPTIONS = 5000  # beyond this the samples are typed as image ids

run = data.current_run()
summary = run.summary()
summary["finished"] = run.store.opened_at(run.run_dir) or summary["finished"]  # when opened, not now

st.markdown(f"### Run `{run.run_hash}`" + (f" · {run.label}" if run.label else "")
            + f" · {summary['dataset']}/{summary['split']} · {summary['images']} images")
counts_now = {
    "images with heatmaps": summary["images_with_grids"], "GT boxes": len(run.gt), "classes": len(run.classes),
    "computed now / reused": f"{summary['computed_now']} / {summary['reused']}"}
snapshot_ui.shown_numbers("run", counts_now)
for col, (label, value) in zip(st.columns(4), counts_now.items()):
    col.metric(label, value)

data.ensure(run, "ap_tables")
tables = run.ap_tables()
flat = tables.to_frame()
per_iou = flat[~flat["iou"].isin([MEAN_OVER_IOUS, COCO_50_95])]
df = per_iou.pivot(index=["method", "protocol", "interp"], columns="iou", values="mAP")
df = df.reindex(index=pd.MultiIndex.from_frame(per_iou[["method", "protocol", "interp"]].drop_duplicates()),
                columns=list(dict.fromkeys(per_iou["iou"]))).reset_index()
df.columns = ["method", "protocol", "interp"] + [f"IoU {k}" for k in df.columns[3:]]
coco = flat[(flat["iou"] == COCO_50_95) & flat["mAP"].notna()].rename(columns={"mAP": "AP .50:.95"})
coco = coco[["method", "protocol", "AP .50:.95"]].to_dict("records")
num = [c for c in df.columns if c.startswith("IoU")]
df[num] = df[num].astype(float)
st.markdown("#### Headline mAP")
widgets.how(run, what="mAP per IoU threshold, every method, protocol and interpolation",
            percentile=run.cfg.boxes.cut)  # the tables are cut by the run's own rule
snapshot_ui.shown_state(percentile=run.cfg.boxes.cut)
widgets.table(widgets.colour_scale(df, num, lo=0.0), len(df), cap=10_000, shown="headline mAP")
if coco:  # COCO's own headline, only where it is defined (the COCO interpolation)
    ap95 = pd.DataFrame(coco).pivot(index="method", columns="protocol", values="AP .50:.95")
    ap95 = ap95.reindex(index=list(dict.fromkeys(r["method"] for r in coco)),
                        columns=[p for p in run.cfg.protocols if p in ap95.columns]).reset_index()
    ap95.columns = ["method"] + [f"AP .50:.95 {p}" for p in ap95.columns[1:]]
    st.markdown("**COCO AP@[.50:.95]** (mean over IoU .50, .55, ... .95; COCO 101-point interpolation)")
    cols95 = list(ap95.columns[1:])
    widgets.table(widgets.colour_scale(ap95, cols95, lo=0.0), len(ap95), cap=10_000, shown="COCO AP .50:.95")
with st.expander("What the protocols and interpolations mean"):
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in (PROTOCOL_NOTES | INTERP_NOTES).items()))

left, right = st.columns(2)
with left:
    st.markdown("#### Configuration")
    st.caption("Everything that changes a number; its hash is the run id (— = not set: the default applies).")
    snapshot_ui.shown_numbers("configuration", summary["config"], style="json")
    st.markdown(widgets.settings_markdown(summary["config"]))
    link = urlencode({k: v for k, v in {"page": "run", "run": permalink.run_param(run.cfg), "h": run.run_hash}.items()
                      if v is not None})
    st.caption("Link to this run (its configuration only; every page's own URL is a permalink of its view):")
    st.code(f"{st.context.url or ''}?{link}", language=None, wrap_lines=True)
with right:
    st.markdown("#### Model and data")
    facts = {"model": summary["model"], "model note": summary["model_note"] or None,
             "dataset": f"{summary['dataset']} / {summary['split']}, {summary['images']} images",
             "skipped images": len(summary["skipped_images"]),
             "skipped annotations": len(summary["skipped_annotations"])}
    snapshot_ui.shown_numbers("model and data", facts | {
        "skipped_images": summary["skipped_images"][:50],
        "skipped_annotations": summary["skipped_annotations"][:50]}, style="json")
    st.markdown(widgets.settings_markdown(facts))
    for what in ("skipped_images", "skipped_annotations"):
        if summary[what]:
            with st.expander(f"{what.replace('_', ' ').capitalize()} ({len(summary[what])}), with the reason"):
                widgets.table(pd.DataFrame(summary[what][:500]), min(len(summary[what]), 500), 420)
    counts = pd.Series(run.dataset.per_class_counts(), name="GT boxes").rename_axis("class").reset_index()
    widgets.table(counts, len(counts), cap=10_000, shown="GT boxes per class")
snapshot_ui.caption(f"Run folder: {run.run_dir} · heatmap key {run.grids.key} · finished {summary['finished']}")


# ------------------------------------------------------------------------------------------ report
@st.cache_data(max_entries=2, show_spinner=False)
def report_files(key: str, samples: tuple, include_paths: bool, _run) -> tuple[bytes, bytes]:
    """The HTML report and the .zip of one selection, built once (``bundle.write_report``)."""
    with tempfile.TemporaryDirectory(prefix="surgery-report-") as tmp:
        out = bundle.write_report(_run, Path(tmp) / "report.html", Path(tmp) / "report.zip",
                                   samples=[tuple(s) for s in samples], include_paths=include_paths)
        return out["html"].read_bytes(), out["zip"].read_bytes()


def pick_samples() -> tuple[list[tuple[int, int]] | None, str | None]:
    """The chosen (image, class) samples, or (None, message) when the typed ids are not in the run."""
    recs = run.dataset.images
    options = [recs[i].image_id for i in run.grids.rows.tolist() if recs[i].num_objects]
    ss = st.session_state
    if ss.get("_report_samples_for") != run.run_hash or "report_samples" not in ss:  # a new run: its defaults
        ss["report_samples"] = [recs[i].image_id for i, _ in report_html.default_samples(run)]
        ss["_report_samples_for"] = run.run_hash
    label = "Samples drawn in the report (each for its most frequent class)"
    help_ = (f"Figures of these images, every method, at the run's percentile and IoU {view_iou(run.cfg):g} (as on "
             "Compare). Default: the "
             f"first {report_html.DEFAULT_SAMPLE_COUNT} images with heatmaps and objects, as `surgery evaluate` draws.")
    if len(options) <= MAX_SAMPLE_OPTIONS:
        if isinstance(ss["report_samples"], str):
            ss["report_samples"] = [x.strip() for x in ss["report_samples"].split(",") if x.strip()]
        known = set(options)
        ss["report_samples"] = [x for x in ss["report_samples"] if x in known]
        ids = st.multiselect(label, options, key="report_samples", help=help_)
    else:
        if isinstance(ss["report_samples"], list):
            ss["report_samples"] = ", ".join(ss["report_samples"])
        text = st.text_input(label + ", image ids separated by commas", key="report_samples", help=help_)
        ids = [s.strip() for s in text.split(",") if s.strip()]
        known = set(options)
        unknown = [s for s in ids if s not in known]
        if unknown:
            return None, ("Not images of this run with heatmaps and objects: " + ", ".join(unknown[:20])
                          + (" …" if len(unknown) > 20 else ""))
    picks = [run.dataset.index_of(s) for s in ids]
    return [(i, main_class(run.dataset.images[i])) for i in picks], None


st.markdown("#### Share this run")
st.caption("One self-contained HTML file (opens offline: configuration, mAP per method, protocol and "
           "interpolation, per-class AP, sweep charts, heatmap quality, pointing games, sample figures), or a .zip "
           "with the same numbers as JSON and CSV, the figures as PNG and the HTML. Same run and selection, same "
           "bytes.")
samples, problem = pick_samples()
paths = st.checkbox("Include absolute paths (dataset root, checkpoint, run store)", key="report_paths",
                    help="Off: every absolute path is cut to its base name, so the report names no folder of "
                         "this machine.")
if problem:
    st.error(problem, icon=":material/error:")
else:
    wanted = (data.run_key(run), tuple(samples), bool(paths))
    if st.button("Build report", icon=":material/description:", key="report_build",
                 help="Draws the sample figures and the charts (a few seconds); the files are kept for this "
                      "selection"):
        st.session_state["_report_for"] = wanted
    if st.session_state.get("_report_for") == wanted:
        try:
            with st.spinner("Building the report…", show_time=True):
                html_bytes, zip_bytes = report_files(*wanted[:3], run)
        except (SurgeryError, OSError, ValueError) as exc:
            st.error(f"**The report could not be built.** {exc}", icon=":material/error:")
        else:
            a, b, c = st.columns([1, 1, 3], vertical_alignment="center")
            a.download_button("Download HTML report", html_bytes, file_name=f"surgery_report_{run.run_hash}.html",
                              mime="text/html", icon=":material/download:", on_click="ignore", key="report_html")
            b.download_button("Download .zip", zip_bytes, file_name=f"surgery_report_{run.run_hash}.zip",
                              mime="application/zip", icon=":material/folder_zip:", on_click="ignore",
                              key="report_zip")
            c.caption(f"HTML {len(html_bytes) / 1e6:.1f} MB · zip {len(zip_bytes) / 1e6:.1f} MB · "
                      f"{len(samples)} sample{'s' * (len(samples) != 1)} · paths "
                      + ("included" if paths else "cut to base names"))
    else:
        st.caption("Pick the samples, then **Build report** to get the download buttons.")
permalink.sync_url()
