"""What a cross-run comparison writes: the per-class table as CSV and markdown with the side-by-side figures
(``surgery runs compare``), and one self-contained HTML file comparing the runs (``surgery report --runs``).

Every file says how many images the runs share and how each number was computed; when the ground truth differs
the per-class table is replaced by the reason (its first difference) and the figures are still written.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from surgery_core.errors import SurgeryError
from surgery_core.eval.protocols import PRESENT
from surgery_core.files import atomic_write_bytes, atomic_write_text
from surgery_core.run.evaluation import INTERP_NOTES, PROTOCOL_NOTES, describe_boxes
from surgery_core.share.crossrun import (Pair, Pairing, compare_table, cross_figure, differences_text, distinct_runs,
                                        sample_ids, sweep_series)
from surgery_core.share.portable import plotly_config, scrub_paths, slug

if TYPE_CHECKING:
    import pandas as pd


def run_facts(pair: Pair) -> dict:
    """What distinguishes the run of a pair: label, hash, dataset, model and weights, input, depth, prompts, box
    rule (absolute paths cut to base names)."""
    run = pair.run
    cfg = run.cfg
    ident = run.model_identity
    weights = ("random weights" if getattr(run, "random_weights", False) else
               (Path(cfg.model.checkpoint).name if cfg.model.checkpoint else "shipped weights"))
    sha = (ident.get("checkpoint_sha256") or "")[:12]
    return {"pair": pair.name, "run": run.run_hash, "label": pair.label, "method": pair.method,
            "dataset": f"{run.dataset.name} / {run.dataset.split}", "images with heatmaps": len(run.grids.rows),
            "model": f"{cfg.model.arch}{' QuickGELU' if cfg.model.quickgelu else ''}, {weights}"
                     + (f" (sha256 {sha})" if sha and weights != "random weights" else ""),
            "input": f"{cfg.input.size or run.grids.input_size} px"
                     + (f", windows {cfg.input.window}/{cfg.input.stride or cfg.input.window} px"
                        if cfg.input.window else ""),
            "surgery depth": cfg.surgery_depth, "prompts": cfg.prompt_set,
            "box rule": scrub_paths(describe_boxes(cfg.boxes))}


def how_text(pairing: Pairing, protocol: str, interp: str, iou: float) -> str:
    """The caption of a comparison table: shared images, protocol, interpolation, IoU, boxes."""
    return (f"{pairing.summary()} · protocol {PROTOCOL_NOTES[protocol]} · {INTERP_NOTES[interp]} · TP at IoU >= "
            f"{iou:g} · boxes of each run at its own box rule and percentile · Δ = pair minus the first pair")


def _md_table(df: "pd.DataFrame") -> str:
    def cell(v):
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.4f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join(":--" if j == 0 else "--:" for j in range(len(df.columns))) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep] + body)


def write_comparison(pairs: list[Pair], pairing: Pairing, out: str | Path, protocol: str, interp: str, iou: float,
                     samples: int = 4, figure_iou: float | None = None) -> dict[str, Path]:
    """Write ``per_class.csv`` (unless the ground truth differs), ``comparison.md`` and ``figures/*.png`` (the
    first ``samples`` shared images with objects, each for its most frequent class); returns {name: path}."""
    from surgery_core.run.evaluation import view_iou
    from surgery_core.share.drawing import encode_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    lines = [f"# Runs compared: {', '.join(p.name for p in pairs)}", "",
             f"{pairing.summary()} ({_counts(pairs, pairing)}).", ""]
    lines += ["## The runs", "", f"Settings that differ: {differences_text(distinct_runs(pairs))}.", "",
              _md_table(_facts_frame(pairs)), ""]
    lines += ["## Per-class AP", ""]
    try:
        table = compare_table(pairs, pairing, protocol, interp, iou)
    except SurgeryError as exc:
        lines += [f"**Refused.** {exc}", ""]
    else:
        paths["csv"] = out / "per_class.csv"
        atomic_write_text(paths["csv"], table.assign(protocol=protocol, interp=interp, iou=iou,
                                                     shared_images=pairing.n).to_csv(index=False))
        lines += [how_text(pairing, protocol, interp, iou), "", _md_table(table), ""]
    fiou = view_iou(pairs[0].run.cfg) if figure_iou is None else figure_iou
    picks = sample_ids(pairing, pairs[0].run, samples)
    if picks:
        lines += ["## Samples", "", f"Boxes at each run's box rule (percentile, Otsu or fixed value), {PRESENT} "
                  f"protocol, TP/FP at IoU >= {fiou:g}.", ""]
    for image_id, cls in picks:
        name = f"figures/{slug(image_id, 60, 'image')}_{slug(cls, 40, 'class')}.png"
        atomic_write_bytes(out / name, encode_png(cross_figure(pairs, pairing, image_id, cls, fiou), level=6))
        paths[name] = out / name
        lines += [f"![{image_id} {cls}]({name})", ""]
    paths["markdown"] = out / "comparison.md"
    atomic_write_text(paths["markdown"], "\n".join(lines) + "\n")
    return paths


def _counts(pairs: list[Pair], pairing: Pairing) -> str:
    """``run 6ac9d95418f0: 40, run e0ec1c6d2126: 12 images with heatmaps``."""
    return ", ".join(f"run {p.run.run_hash}: {n}" for p, n in zip(_firsts(pairs), pairing.counts)) + \
        " images with heatmaps"


def _firsts(pairs: list[Pair]) -> list[Pair]:
    """One pair per distinct run, in order (the runs of :class:`Pairing`'s counts)."""
    seen, out = set(), []
    for p in pairs:
        if id(p.run) not in seen:
            seen.add(id(p.run))
            out.append(p)
    return out


def _facts_frame(pairs: list[Pair]):
    import pandas as pd

    return pd.DataFrame([run_facts(p) for p in pairs])


# ============================================================================================ HTML
_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1400px;padding:0 18px 60px;color:#1d2733;line-height:1.4}h1{font-size:1.5em}h2{font-size:1.2em;
border-bottom:2px solid #dde3ea;margin-top:30px}table{border-collapse:collapse;font-size:.84em;margin:6px 0 12px}
th,td{border:1px solid #d6dde5;padding:2px 7px;text-align:right}th{background:#f2f5f8}td.l,th.l{text-align:left}
td.best{font-weight:700;background:#e5f4e8}td.best::after{content:" \\2605";color:#2f9e44;font-size:.8em}
td.pos{color:#1b7f35}td.neg{color:#c0392b}.note{color:#4a5866;font-size:.9em}
.warn{background:#fff4e5;border:1px solid #f59f00;padding:8px 12px;border-radius:4px}
figure{margin:6px 0 14px}figure img{max-width:100%;border:1px solid #ddd}"""


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _num(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _html_table(df, names: list[str]) -> str:
    """The per-class table with the best pair of each row marked and the differences coloured."""
    out = ["<table><thead><tr>"] + [f"<th{' class=l' if j == 0 else ''}>{_esc(c)}</th>"
                                    for j, c in enumerate(df.columns)] + ["</tr></thead><tbody>"]
    for _, row in df.iterrows():
        vals = [row[n] for n in names]
        finite = [v for v in vals if v == v]
        top = max(finite) if finite else None
        some_worse = bool(finite) and min(finite) < top
        cells = []
        for c in df.columns:
            v = row[c]
            if c == "class":
                cells.append(f"<td class=l>{_esc(v)}</td>")
            elif c == "GT":
                cells.append(f"<td>{int(v)}</td>")
            elif c in names:
                best = some_worse and v == top
                cells.append(f"<td{' class=best' if best else ''}>{_num(v)}</td>")
            else:
                cls = "" if v != v or v == 0 else (" class=pos" if v > 0 else " class=neg")
                cells.append(f"<td{cls}>{'' if v != v else ('+' if v > 0 else '')}{_num(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _sweep_chart(pairs: list[Pair], pairing: Pairing, protocol: str, interp: str, iou: float):
    import plotly.graph_objects as go

    from surgery_core.share.crossrun import unique_names

    runs = distinct_runs(pairs)
    classes = pairs[0].run.classes
    fig = go.Figure()
    for p, n in zip(pairs, unique_names(pairs)):
        xs, ys = sweep_series(p, pairing.index[runs.index(p.run)], classes, protocol, interp, iou)
        fig.add_trace(go.Scatter(x=xs, y=[None if v is None else v for v in ys], mode="lines+markers", name=n))
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=40, b=50), xaxis_title="box percentile of the map",
                      yaxis_title=f"mAP ({interp if interp != 'coco' else 'voc07'}, IoU >= {iou:g})",
                      title=dict(text=f"Threshold sweep on the {pairing.n} shared images, {protocol} protocol",
                                 font_size=14), legend=dict(orientation="h", y=-0.2))
    return fig


def build_runs_html(pairs: list[Pair], pairing: Pairing, protocol: str, interp: str, iou: float,
                    samples: int = 4, figure_iou: float | None = None) -> str:
    """One self-contained HTML file comparing the pairs: the runs' facts, the per-class table (or why it is
    refused), the sweep chart and the side-by-side figures of ``samples`` shared images."""
    from surgery_core import __version__
    from surgery_core.run.evaluation import view_iou
    from surgery_core.share.crossrun import unique_names
    from surgery_core.share.drawing import encode_png

    facts = _facts_frame(pairs)
    body = [f"<h1>Runs compared</h1><p class=note>{_esc(pairing.summary())} "
            f"({_counts(pairs, pairing)})."
            " A self-contained file: charts and images are embedded, nothing is fetched.</p>",
            "<h2>The runs</h2>" + f"<p>Settings that differ: {_esc(differences_text(distinct_runs(pairs)))}.</p>"
            + facts.to_html(index=False, border=0, escape=True)]
    body.append("<h2>Per-class AP</h2>")
    try:
        table = compare_table(pairs, pairing, protocol, interp, iou)
    except SurgeryError as exc:
        body.append(f"<p class=warn><strong>Refused.</strong> {_esc(exc)}</p>")
    else:
        body.append(f"<p class=note>{_esc(how_text(pairing, protocol, interp, iou))}; ★ the best pair of the row "
                    "(none when all are equal).</p>" + _html_table(table, unique_names(pairs)))
    plot_html = ""
    if pairing.n and not pairing.gt_problem:
        fig = _sweep_chart(pairs, pairing, protocol, interp, iou)
        plot_html = fig.to_html(full_html=False, include_plotlyjs=True, div_id="surgery-runs-sweep",
                                config={"responsive": True, **plotly_config("surgery-runs-sweep")},
                                default_height="380px", default_width="100%")
        body.append("<h2>Threshold sweep</h2>" + plot_html)
    fiou = view_iou(pairs[0].run.cfg) if figure_iou is None else figure_iou
    picks = sample_ids(pairing, pairs[0].run, samples)
    if picks:
        body.append(f"<h2>Samples</h2><p class=note>Boxes at each run's box rule (percentile, Otsu or fixed value), "
                    f"{PRESENT} protocol, TP/FP at IoU "
                    f"&gt;= {fiou:g}; ring: pointing-game point.</p>")
    for image_id, cls in picks:
        png = encode_png(cross_figure(pairs, pairing, image_id, cls, fiou), level=6)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        body.append(f"<figure><img src=\"{uri}\" alt=\"{_esc(image_id)} {_esc(cls)}\"><figcaption>Image "
                    f"{_esc(image_id)}, class {_esc(cls)}</figcaption></figure>")
    title = "CLIP Surgery runs compared — " + ", ".join(p.name for p in pairs)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"surgery_core {_esc(__version__)}\"><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
