"""Run: what was computed, from what, and the headline mAP table of the run's own box settings."""

import json

import pandas as pd
import streamlit as st

from dashboard import data, state, widgets
from surgery_core.evaluation import INTERP_NOTES, PROTOCOL_NOTES

run = data.current_run()
summary = run.summary()
try:  # when the run was opened, not now
    summary["finished"] = json.loads((run.run_dir / "run.json").read_text()).get("finished", "?")
except (OSError, ValueError):
    pass

st.markdown(f"### Run `{run.run_hash}` · {summary['dataset']}/{summary['split']} · {summary['images']} images")
c = st.columns(4)
c[0].metric("images with heatmaps", summary["images_with_grids"])
c[1].metric("GT boxes", len(run.gt))
c[2].metric("classes", len(run.classes))
c[3].metric("computed now / reused", f"{summary['computed_now']} / {summary['reused']}")

data.ensure(run, "ap_tables")
tables = run.ap_tables()
rows = []
for m, by_proto in tables["tables"].items():
    for proto, by_interp in by_proto.items():
        for interp, entry in by_interp.items():
            row = {"method": m, "protocol": proto, "interp": interp}
            row |= {f"IoU {k}": v for k, v in entry["per_iou"]["mAP_per_iou"].items()}
            if interp == "coco":
                row["AP .50:.95"] = entry.get("mAP_50_95")
            rows.append(row)
df = pd.DataFrame(rows)
num = [c for c in df.columns if c.startswith(("IoU", "AP"))]
df[num] = df[num].astype(float)
st.markdown("#### Headline mAP")
widgets.how(run, what="mAP per IoU threshold, every method, protocol and interpolation",
            percentile=tables["percentile"])
widgets.table(widgets.colour_scale(df, num, lo=0.0), len(df))
with st.expander("What the protocols and interpolations mean"):
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in (PROTOCOL_NOTES | INTERP_NOTES).items()))

left, right = st.columns(2)
with left:
    st.markdown("#### Configuration")
    st.caption("Everything that changes a number; its hash is the run id. Links carry the fields that differ "
               "from the defaults.")
    st.json(summary["config"], expanded=2)
    link = "&".join(f"{k}={v}" for k, v in st.query_params.items())
    st.caption("Link to this run (every page's URL is a permalink of its view):")
    st.code(f"{st.context.url or ''}?{link}", language=None, wrap_lines=True)
with right:
    st.markdown("#### Model and data")
    st.json({"model": summary["model"], "model_note": summary["model_note"] or None,
             "skipped_images": summary["skipped_images"][:50],
             "skipped_annotations": summary["skipped_annotations"][:50]}, expanded=2)
    counts = pd.Series(run.dataset.per_class_counts(), name="GT boxes").rename_axis("class").reset_index()
    widgets.table(counts, len(counts))
st.caption(f"Run folder: {run.run_dir} · heatmap key {run.grids.key} · finished {summary['finished']}")
state.sync_url()
