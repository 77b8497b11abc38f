"""A run as ONE self-contained HTML report.

:func:`build_report_html` returns one HTML file that opens offline with nothing else: the run's configuration,
mAP per method, protocol and interpolation, per-class AP tables, the IoU and percentile sweeps as interactive
plotly charts (plotly.js inlined once, gzip-compressed, no CDN), heatmap quality and the pointing games, and the
figures (every method) of chosen samples as ``data:`` WebP pictures, each sample's image drawn once. The same run and selection give byte-identical files
(no timestamps, fixed plotly div ids). Absolute paths of the configuration (dataset root, checkpoint, ...) are cut
to their base names unless ``include_paths``. :mod:`surgery_core.share.bundle` packs the same parts as a zip.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from surgery_core.errors import SurgeryError
from surgery_core.eval.protocols import PRESENT
from surgery_core.eval.results import COCO_50_95, MEAN_OVER_IOUS, APTables, QualityTables, Sweep, iou_key
from surgery_core.share.portable import plotly_config, scrub_paths, slug
from surgery_core.share.report_charts import deferred, iou_chart, percentile_chart, plotly_library

if TYPE_CHECKING:
    from surgery_core.run.facade import Run

DEFAULT_SAMPLE_COUNT = 4
#: Sample figures: lossy WebP at this quality, panels this many px on their longer side (the image of a sample
#: drawn once, then per method its heatmap and its boxes): a report of 4 samples x 10 methods stays under 5 MB.
WEBP_QUALITY = 80
PANEL_PX = 384


def _fmt(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


@dataclass
class _Sample:
    image_index: int
    class_index: int
    image_id: str
    class_name: str
    n_gt: int
    figures: dict[str, bytes] = field(default_factory=dict)  # method -> WebP: heatmap | boxes (empty: unavailable)
    picture: bytes = b""  # WebP: the image with its GT boxes, drawn once for all methods
    note: str = ""

    @property
    def stem(self) -> str:
        return f"{slug(self.image_id, 60, 'image')}_{slug(self.class_name, 40, 'class')}"


@dataclass
class Parts:
    head: dict
    tables: APTables
    multi: dict
    sweep: Sweep
    quality: QualityTables
    samples: list[_Sample]
    methods: list[str]
    classes: list[str]
    figure_iou: float
    include_paths: bool
    mark_best: bool = True  # False for random weights: no method is marked best

    def best_cells(self, values: list) -> list[tuple[str, str]]:
        """:func:`_best_cells`, or the plain cells when no method may be marked best (random weights)."""
        return _best_cells(values) if self.mark_best else [(_fmt(v), "") for v in values]

    def marked(self, what: str) -> str:
        """``what`` ('best method per row marked') or, for random weights, why nothing is marked."""
        return what if self.mark_best else "no method marked best: random weights"


def _picture(image_rgb) -> bytes:
    """WebP at :data:`WEBP_QUALITY`: a twentieth of a PNG's bytes on aerial scenes and heatmaps."""
    from surgery_core.share.drawing import encode_webp

    try:
        return encode_webp(image_rgb, WEBP_QUALITY)
    except ValueError as exc:
        raise SurgeryError(str(exc)) from None


def sample_picture(run: "Run", image_index: int, class_index: int) -> bytes:
    """The image of a sample with the GT boxes of the class (green) and of the others (white), titled: drawn once
    above the method figures (:func:`surgery_core.share.report.figure` without its image column)."""
    import numpy as np

    from surgery_core.share.drawing import gt_view, title_bar

    rec = run.dataset.images[image_index]
    sel = rec.labels == class_index
    view = gt_view(run.image(image_index), rec.xyxy[sel], rec.xyxy[~sel], side=PANEL_PX)
    n = int(sel.sum())
    head = title_bar(view.shape[1], f"{rec.image_id}: {run.classes[class_index]}, {n} GT box{'es' if n != 1 else ''} "
                                    "(green; other classes white)", 0.5)
    return _picture(np.vstack([head, view]))


def default_samples(run: "Run", count: int = DEFAULT_SAMPLE_COUNT) -> list[tuple[int, int]]:
    """The first ``count`` images with grids, an image file and objects, each with its most frequent class
    (what ``surgery evaluate`` draws)."""
    from surgery_core.share.report import main_class, sample_indices

    return [(i, main_class(run.dataset.images[i])) for i in sample_indices(run, count)]


def _known_paths(run: "Run") -> list[str]:
    from surgery_core.files import cache_dir

    cfg = run.cfg
    out = [cfg.data.root, cfg.data.images, cfg.model.checkpoint, str(run.store.root), str(cache_dir()),
           str(Path.home())]
    if getattr(run.dataset, "root", None) is not None:
        out.append(str(run.dataset.root))
    for p in list(out):
        if p and not os.path.isabs(p):
            out.append(str(Path(p).expanduser().resolve()))
    return [p for p in out if p]


def collect(run: "Run", samples, include_paths: bool, figure_iou: float | None = None) -> Parts:
    from surgery_core.run.evaluation import view_iou
    from surgery_core.share.report import figure, header, multi_iou

    figure_iou = view_iou(run.cfg) if figure_iou is None else figure_iou  # the dashboard's Compare threshold
    head = header(run)
    run.ensure_boxes()  # every percentile the report needs, in one pass (one progress bar)
    if not include_paths:
        head = scrub_paths(head, _known_paths(run))
    if samples is None:
        samples = default_samples(run)
    picked: list[_Sample] = []
    seen = set()
    drawing: list[tuple[_Sample, dict]] = []  # the samples whose pictures are being drawn, and their futures
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="report-figures")
    for item in samples:
        try:
            i, c = (int(v) for v in item)
        except (TypeError, ValueError):
            raise SurgeryError(f"a sample is (image index, class index), not {item!r}") from None
        if not 0 <= i < len(run.dataset):
            raise SurgeryError(f"sample image index {i} is outside the dataset (0..{len(run.dataset) - 1})")
        if not 0 <= c < len(run.classes):
            raise SurgeryError(f"sample class index {c} is outside the class list (0..{len(run.classes) - 1})")
        if (i, c) in seen:
            continue
        seen.add((i, c))
        rec = run.dataset.images[i]
        s = _Sample(i, c, str(rec.image_id), run.classes[c], int((rec.labels == c).sum()))
        if run.row_of(i) is None:
            s.note = "this image has no heatmaps in the run (skipped: see the configuration section)"
        else:
            # drawn and encoded on every core (OpenCV releases the GIL): the same bytes as one after the other
            jobs = {None: pool.submit(sample_picture, run, i, c)}
            for m in run.cfg.methods:
                jobs[m] = pool.submit(lambda m=m, i=i, c=c: _picture(
                    figure(run, m, i, c, figure_iou, image_column=False, side=PANEL_PX)))
            drawing.append((s, jobs))
        picked.append(s)
    try:
        for s, jobs in drawing:
            try:  # in drawing order: the first failure is the one a sequential loop would have met
                s.picture = jobs.pop(None).result()
                for m, job in jobs.items():
                    s.figures[m] = job.result()
            except (FileNotFoundError, OSError, SurgeryError) as exc:
                s.figures, s.picture = {}, b""
                msg = str(exc)
                s.note = f"image not available: {msg if include_paths else scrub_paths(msg, _known_paths(run))}"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return Parts(head=head, tables=run.ap_tables(), multi=multi_iou(run), sweep=run.sweep(),
                  quality=run.quality(), samples=picked, methods=list(run.cfg.methods),
                  classes=list(run.classes), figure_iou=float(figure_iou), include_paths=include_paths,
                 mark_best=not run.random_weights)


# ============================================================================================ HTML
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;
padding:0 18px 60px;color:#1d2733;line-height:1.4}
h1{font-size:1.5em;margin:18px 0 4px}h2{font-size:1.25em;border-bottom:2px solid #dde3ea;padding-bottom:3px;
margin-top:34px}h3{font-size:1.05em;margin:18px 0 6px}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eee;z-index:10}
nav a{margin-right:14px;color:#0b6bcb;text-decoration:none;font-size:.92em}
table{border-collapse:collapse;font-size:.84em;margin:6px 14px 12px 0}
th,td{border:1px solid #d6dde5;padding:2px 7px;text-align:right}th{background:#f2f5f8}
td.l,th.l{text-align:left}td.best{font-weight:700;background:#e5f4e8}
td.best::after{content:" \\2605";color:#2f9e44;font-size:.8em}
caption{caption-side:top;text-align:left;font-size:.92em;color:#4a5866;padding:2px 0}
.flex{display:flex;flex-wrap:wrap;align-items:flex-start}.note{color:#4a5866;font-size:.9em}
.warn{background:#fff4e5;border:1px solid #f59f00;padding:8px 12px;border-radius:4px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.quad{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:4px 12px}
figure{margin:6px 0 14px}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.88em;color:#4a5866}dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 14px}
dl.kv dt{font-weight:600}dl.kv dd{margin:0}code{background:#f2f5f8;padding:0 3px;border-radius:3px}
pre{background:#f7f9fb;border:1px solid #e3e8ee;padding:8px;overflow:auto;font-size:.82em}
"""


def _table(caption: str, header: list[str], rows: list[list[tuple[str, str]]], left_cols: int = 1) -> str:
    """rows: lists of (text, css class) cells; the first ``left_cols`` columns are left-aligned labels."""
    out = [f"<table><caption>{_esc(caption)}</caption><thead><tr>"]
    out += [f"<th class=\"l\">{_esc(h)}</th>" if j < left_cols else f"<th>{_esc(h)}</th>"
            for j, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for j, (text, cls) in enumerate(row):
            classes = " ".join(x for x in ("l" if j < left_cols else "", cls) if x)
            out.append(f"<td class=\"{classes}\">{_esc(text)}</td>" if classes else f"<td>{_esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _best_cells(values: list) -> list[tuple[str, str]]:
    """Cells of one row with the best (highest) value marked; ties all marked, but nothing is marked when
    every value is equal (all 0, say); None is n/a."""
    nums = [v for v in values if v is not None]
    top = max(nums) if nums else None
    some_worse = bool(nums) and min(nums) < top
    return [(_fmt(v), "best" if (some_worse and v is not None and v == top) else "") for v in values]


def _section_config(p: Parts, run) -> str:
    from surgery_core.share.report import input_size

    h, cfg = p.head, run.cfg
    m = h["model"]
    conf = h["config"]
    items = [
        ("run hash", h["run_hash"]), *([("run label", run.label)] if run.label else []),
        ("heatmap key", h["heatmap_key"]),
        ("model", (f"{m['name']}: " if m.get("name") else "") + f"{m.get('arch')} (QuickGELU {m.get('quickgelu')}), "
                  f"checkpoint {conf['model'].get('checkpoint') or ('found by name' if m.get('name') else 'shipped demo weights')}, sha256 "
                  f"{m.get('checkpoint_sha256') or 'none'}"),
        ("dataset", f"{h['dataset']} / {h['split']} ({conf['data']['kind']}"
                    + (f", root {conf['data']['root']}" if conf["data"].get("root") else "")
                    + (f", first {conf['data']['limit']} images" if conf["data"].get("limit") else "") + ")"),
        ("images", f"{h['images']} in the split, {h['images_with_grids']} with heatmaps, "
                   f"{len(h['skipped_images'])} skipped"),
        ("heatmaps", f"methods {', '.join(cfg.methods)}; surgery depth {cfg.surgery_depth}; prompt set "
                     f"{cfg.prompt_set}; {input_size(run)}"
                     + (f", windows {cfg.input.window}/{cfg.input.stride or cfg.input.window} px"
                        if cfg.input.window else "")),
        ("box rule", h["box_rule"]),
        ("protocols", "; ".join(p.tables.protocol_notes[pr] for pr in cfg.protocols)),
        ("interpolations", "; ".join(f"{it}: {p.tables.entry(p.methods[0], cfg.protocols[0], it).note}"
                                     for it in cfg.interps)),
        ("IoU thresholds", ", ".join(f"{t:g}" for t in cfg.iou_thresholds)),
        ("sweep percentiles", ", ".join(f"{x:g}" for x in cfg.sweep_percentiles)),
    ]
    out = ["<section id=\"configuration\"><h2>Run configuration</h2>"]
    if h.get("model_note"):
        out.append(f"<p class=\"warn\"><strong>Warning.</strong> {_esc(h['model_note'])}</p>")
    out.append("<dl class=\"kv\">" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items) + "</dl>")
    if h["skipped_images"]:
        out.append("<h3>Skipped images</h3><ul>" + "".join(
            f"<li>{_esc(s.get('image_id'))}: {_esc(s.get('reason'))}</li>" for s in h["skipped_images"]) + "</ul>")
    out.append("<details><summary>Full configuration (JSON"
               + ("" if p.include_paths else "; absolute paths cut to base names") + ")</summary><pre>"
               + _esc(json.dumps(conf, indent=2, sort_keys=True)) + "</pre></details></section>")
    return "".join(out)


def _section_map(p: Parts, cfg) -> str:
    out = ["<section id=\"map\"><h2>mAP per method and protocol</h2>",
           f"<p class=\"note\">Boxes at {p.tables.cut_text} ({_esc(p.head['box_rule'])}). mAP is the mean AP over "
           "the classes with ground truth; \"mean over IoUs\" averages the thresholds shown. "
           f"{p.marked('Best method per column and protocol marked')}.</p>"]
    for it in cfg.interps:
        note = p.tables.entry(p.methods[0], cfg.protocols[0], it).note
        ious = [f"{t:.6g}" for t in cfg.iou_thresholds]
        header = ["method", "protocol"] + [f"IoU ≥ {k}" for k in ious] + ["mean over IoUs"]
        if it == "coco":
            header.append("AP@[.50:.95]")
        rows = []
        for pr in cfg.protocols:
            cols = []
            for m in p.methods:
                e = p.tables.entry(m, pr, it)
                vals = [e.map_per_iou.get(k) for k in ious] + [e.map]
                if it == "coco":
                    vals.append(e.map_50_95)
                cols.append(vals)
            # mark the best method per column within the protocol
            marks = [p.best_cells([cols[k][j] for k in range(len(p.methods))]) for j in range(len(cols[0]))]
            for k, m in enumerate(p.methods):
                rows.append([(m, ""), (pr, "")] + [marks[j][k] for j in range(len(cols[0]))])
        out.append(_table(f"mAP — {it}: {note}; {p.tables.cut_text}", header, rows, left_cols=2))
    out.append("</section>")
    return "".join(out)


def _section_per_class(p: Parts, cfg) -> str:
    out = ["<section id=\"per-class\"><h2>Per-class AP</h2>",
           f"<p class=\"note\">Rows: classes (GT = ground-truth boxes of the class in the images with heatmaps); "
           f"columns: methods; {p.marked('best method per row marked (ties all marked; no mark when all are equal)')}. Boxes at "
           f"{p.tables.cut_text}.</p>"]
    first = True
    for pr in cfg.protocols:
        for it in cfg.interps:
            note = p.tables.entry(p.methods[0], pr, it).note
            keys = [(iou_key(t), f"IoU ≥ {t:g}") for t in cfg.iou_thresholds] + [(MEAN_OVER_IOUS, "mean over IoUs")]
            if it == "coco":
                keys.append((COCO_50_95, "AP@[.50:.95]"))
            tables = []
            for key, label in keys:
                rows = [[(c, ""), (str(n_gt), "")] + p.best_cells(vals)
                        for c, n_gt, vals in p.tables.per_class(pr, it, key, p.methods, p.classes)]
                tables.append(_table(f"AP per class — protocol {pr}, {it}, {label}, {p.tables.cut_text}",
                                     ["class", "GT"] + p.methods, rows, left_cols=1))
            out.append(f"<details{' open' if first else ''}><summary>Protocol {_esc(pr)}, {_esc(it)} "
                       f"({_esc(note)})</summary><div class=\"flex\">{''.join(tables)}</div></details>")
            first = False
    out.append("</section>")
    return "".join(out)


def _section_sweep(p: Parts, cfg, plot_html: list[str]) -> str:
    sw = p.sweep
    out = ["<section id=\"sweep\"><h2>Threshold sweeps</h2>",
           f"<p class=\"note\">Interactive (hover for values; the buttons pick the IoU threshold of the percentile "
           f"sweep). {_esc(sw.box_note)}; only the percentile changes along the percentile sweep.</p>",
           "<h3 id=\"iou-sweep\">mAP vs IoU threshold</h3>", plot_html[0],
           "<h3 id=\"percentile-sweep\">mAP vs threshold percentile</h3>", plot_html[1]]
    rows = []
    for m in p.methods:
        for pr in cfg.protocols:
            for it in sw.interps:
                b = sw.cell(m, pr, it).best
                rows.append([(m, ""), (pr, ""), (it, ""), (f"{b.percentile:g}", ""), (f"{b.iou:g}", ""),
                             (_fmt(b.map), "")])
    out.append(_table("Best operating point of the sweep (highest mAP over percentile x IoU)",
                      ["method", "protocol", "interp", "percentile", "IoU", "mAP"], rows, left_cols=3))
    parts = []
    for pr in cfg.protocols:
        for it in sw.interps:
            rows = []
            for m in p.methods:
                for a, pc in enumerate(sw.percentiles):
                    rows.append([(m, ""), (f"{pc:g}", "")] + [(_fmt(v), "") for v in sw.cell(m, pr, it).map[a]])
            parts.append(_table(f"mAP over percentile x IoU — protocol {pr}, {it}",
                                ["method", "percentile"] + [f"IoU ≥ {t:g}" for t in sw.ious], rows, left_cols=1))
    out.append("<details><summary>Sweep tables (every value of the charts)</summary><div class=\"flex\">"
               + "".join(parts) + "</div></details></section>")
    return "".join(out)


def _section_quality(p: Parts, cfg) -> str:
    from surgery_core.model.methods import METHODS

    q = p.quality
    tol = q.to_dict()["tolerance_px_at_224"]  # as the files write it
    out = ["<section id=\"quality\"><h2>Heatmap quality and pointing game</h2>",
           f"<p class=\"note\">Over the (image, class) pairs with ground truth ({PRESENT} protocol). Pointing game: "
           f"the map's maximum lies in a GT box of the class (tolerance {tol} px at 224 scale); energy pointing game: "
           f"share of the map's energy inside the class's GT boxes. Best-box IoU: the best IoU of any box cut at the "
           f"percentile with a GT box of the pair. GT response: {_esc(q.gt_response_units)}.</p>"]
    rows = []
    cols = {"n": [], "pg": [], "pgc": [], "epg": [], "epgc": []}
    for m in p.methods:
        mq = q.methods[m]
        cols["n"].append(mq.n_pairs)
        cols["pg"].append(mq.pointing_game["overall"])
        cols["pgc"].append(mq.pointing_game["mean_over_classes"])
        cols["epg"].append(mq.energy_pointing_game["overall"])
        cols["epgc"].append(mq.energy_pointing_game["mean_over_classes"])
    marks = {k: p.best_cells(v) for k, v in cols.items() if k != "n"}
    for k, m in enumerate(p.methods):
        g = q.methods[m].gt_response
        rows.append([(m, ""), (str(cols["n"][k]), ""), marks["pg"][k], marks["pgc"][k], marks["epg"][k],
                     marks["epgc"][k], (f"{_fmt(g['mean_mean'])} ± {_fmt(g['mean_std'])}", ""),
                     (f"{_fmt(g['max_mean'])} ± {_fmt(g['max_std'])}", "")])
    out.append(_table(f"Pointing game and GT response per method ({p.marked('best per column marked')})",
                      ["method", "pairs", "pointing game (over pairs)", "pointing game (mean over classes)",
                       "energy PG (over pairs)", "energy PG (mean over classes)", "GT mean response (mean ± std)",
                       "GT max response (mean ± std)"], rows))
    per_pct = []
    for m in p.methods:
        rows = [[(f"{r['percentile']:g}", ""), (_fmt(r["mean_best_iou"]), ""), (_fmt(r["max_best_iou"]), ""),
                 (_fmt(r["mean_n_boxes"], 2), ""), (_fmt(r["mean_activation_ratio"]), "")]
                for r in q.methods[m].by_percentile]
        per_pct.append(_table(f"{m} — {METHODS[m].description if m in METHODS else ''}",
                              ["percentile", "mean best-box IoU", "max best-box IoU", "boxes / pair",
                               "activation ratio"], rows))
    out.append("<h3>Best-box IoU per threshold percentile</h3><div class=\"flex\">" + "".join(per_pct) + "</div>")
    rows = []
    for c in p.classes:
        pcs = [q.methods[m].pointing_game["per_class"].get(c) for m in p.methods]
        if not any(pcs):
            continue
        n = next(x["n"] for x in pcs if x)
        rows.append([(c, ""), (str(n), "")] + p.best_cells([x["accuracy"] if x else None for x in pcs]))
    if rows:
        out.append("<details><summary>Pointing game per class</summary>"
                   + _table("Pointing game accuracy per class (pairs = images with the class)",
                            ["class", "pairs"] + p.methods, rows) + "</details>")
    out.append("</section>")
    return "".join(out)


def _section_samples(p: Parts, cfg) -> str:
    from surgery_core.model.methods import METHODS

    out = ["<section id=\"samples\"><h2>Every method on chosen samples</h2>",
           f"<p class=\"note\">Per sample its image with the GT boxes of the class (green, solid), then per method "
           f"two columns: heatmap overlay (jet, min-max normalised) | GT vs boxes cut at {p.tables.cut_text} (red, "
           f"dashed; score, IoU with the best GT, TP/FP at IoU ≥ {p.figure_iou:g}; {PRESENT} protocol). Pictures: "
           f"WebP, quality {WEBP_QUALITY}, panels {PANEL_PX} px.</p>"]
    if not p.samples:
        out.append("<p>No sample selected.</p>")
    for s in p.samples:
        out.append(f"<h3 id=\"sample-{_esc(s.stem)}\">Image {_esc(s.image_id)} — {_esc(s.class_name)} "
                   f"({s.n_gt} GT box{'es' if s.n_gt != 1 else ''})</h3>")
        if s.note:
            out.append(f"<p class=\"warn\">{_esc(s.note)}</p>")
        if s.picture:
            uri = "data:image/webp;base64," + base64.b64encode(s.picture).decode("ascii")
            out.append(f"<figure><img src=\"{uri}\" alt=\"image {_esc(s.image_id)} with the GT boxes of "
                       f"{_esc(s.class_name)}\"></figure>")
        out.append("<div class=\"quad\">")
        for m, pic in s.figures.items():
            uri = "data:image/webp;base64," + base64.b64encode(pic).decode("ascii")
            desc = METHODS[m].description if m in METHODS else ""
            out.append(f"<figure><img src=\"{uri}\" alt=\"{_esc(m)}: image {_esc(s.image_id)}, class "
                       f"{_esc(s.class_name)}\"><figcaption><strong>{_esc(m)}</strong> — {_esc(desc)}"
                       f"</figcaption></figure>")
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def _section_localisation(p: Parts, run) -> str:
    """CorLoc per method and protocol (``run.corloc()``), and mAP of small, medium and large objects
    (``run.ap_by_size()``, first interpolation, each protocol, the run's first IoU)."""
    cl, by = run.corloc(), run.ap_by_size()
    keys = list(cl.entry(p.methods[0], run.cfg.protocols[0]).corloc)
    out = [f"<section id=\"localisation\"><h2>CorLoc and AP by object size</h2><p class=\"note\">{_esc(cl.note)}. "
           f"{_esc(cl.box_note)}.</p>"]
    rows = [[(m, ""), (pr, "")] + [(_fmt(cl.entry(m, pr).corloc[k]), "") for k in keys]
            for pr in run.cfg.protocols for m in p.methods]
    out.append(_table("CorLoc (mean over classes)", ["method", "protocol"] + [f"IoU ≥ {k}" for k in keys], rows, 2))
    it, t = run.cfg.interps[0], iou_key(run.cfg.iou_thresholds[0])
    sizes = list(by.tables)
    rows = [[(m, ""), (pr, "")] + p.best_cells([by.tables[s].entry(m, pr, it).map_per_iou.get(t) for s in sizes])
            for pr in run.cfg.protocols for m in p.methods]
    out.append(_table(f"mAP by object size — {it}, IoU ≥ {t}; COCO's buckets (px² of the original image): "
                      "small ≤ 32², medium 32²–96², large ≥ 96²; GT of other sizes ignored, as are detections "
                      "matched to it and unmatched detections of other sizes", ["method", "protocol"] + sizes, rows, 2))
    mix = [[(c, "")] + [(str(v[s]), "") for s in sizes] for c, v in by.size_mix.items() if any(v.values())]
    return "".join(out + [_table("Ground-truth boxes per class and size", ["class"] + sizes, mix), "</section>"])


def render_html(p: Parts, run) -> str:
    cfg = run.cfg
    figs = [("surgery-iou-sweep", iou_chart(p, cfg)), ("surgery-percentile-sweep", percentile_chart(p, cfg))]
    import plotly.io as pio

    plots = [deferred(pio.to_html(fig, validate=False, full_html=False, include_plotlyjs=False, div_id=div_id,
                                  config={"responsive": True, "showSendToCloud": False,
                                          **plotly_config(f"{div_id}-{run.run_hash}")},
                                  default_height=f"{fig['layout']['height']}px", default_width="100%"))
             for div_id, fig in figs]
    plots[0] = plotly_library() + plots[0]
    from surgery_core import __version__

    title = f"CLIP Surgery report — run {run.title()}" + ("" if p.mark_best else " — RANDOM WEIGHTS")
    nav = "".join(f"<a href=\"#{a}\">{_esc(t)}</a>" for a, t in (
        ("configuration", "Configuration"), ("map", "mAP"), ("per-class", "Per-class AP"),
        ("localisation", "CorLoc, sizes"), ("sweep", "Sweeps"),
        ("quality", "Quality"), ("samples", "Samples")))
    body = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<meta name=\"generator\" content=\"surgery_core {_esc(__version__)}\">",
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1><p class=\"note\">{_esc(p.head['model'].get('arch'))} on {_esc(p.head['dataset'])} / "
        f"{_esc(p.head['split'])}, {p.head['images_with_grids']} images with heatmaps. A self-contained file: the "
        "charts and images are embedded, nothing is fetched.</p>",
        f"<nav>{nav}</nav>",
        _section_config(p, run), _section_map(p, cfg), _section_per_class(p, cfg), _section_localisation(p, run),
        _section_sweep(p, cfg, plots),
        _section_quality(p, cfg), _section_samples(p, cfg),
        "</body></html>\n",
    ]
    return "\n".join(body)


def build_report_html(run: "Run", samples: list[tuple[int, int]] | None = None, include_paths: bool = False) -> str:
    """One self-contained HTML report of ``run`` (see the module docstring).

    samples: (dataset image index, class index) pairs to draw; None = :func:`default_samples`.
    include_paths: keep absolute paths of the configuration (default: cut to base names).
    """
    return render_html(collect(run, samples, include_paths), run)
