"""What ``surgery evaluate`` writes: the original report's files, for every method, from one run.

``map_results.json``, ``multi_iou_results.json``, ``sweep_results.json``, ``heatmap_quality_analysis.json``,
``corloc_results.json`` (CorLoc), ``ap_by_size_results.json`` (AP of small, medium and large objects),
``evaluation_report.md``, per method one three-column PNG per sample in ``<method>/``, and per sample one PNG
of every method side by side in ``compare/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from surgery_core.eval.boxes import cut_label, cut_short
from surgery_core.eval.results import APTables, QualityTables, iou_key
from surgery_core.files import atomic_write_bytes, atomic_write_text, write_json
from surgery_core.model.identity import RANDOM_WEIGHTS_LABEL
from surgery_core.model.methods import METHODS, posembed_words
from surgery_core.run import pairs
from surgery_core.eval.protocols import PRESENT, Cell, ProtocolLike, headline_protocol
from surgery_core.eval.protocols import protocol as as_protocol
from surgery_core.run.evaluation import INTERP_NOTES, PROTOCOL_NOTES, describe_boxes, view_iou
from surgery_core.run.facade import Run
from surgery_core.share.drawing import comparison, det_labels, encode_png, three_column
from surgery_core.share.portable import slug


def header(run: Run) -> dict:
    """Identification of a run placed at the top of every output file."""
    s = run.summary()
    return {k: s[k] for k in ("run_hash", "heatmap_key", "model", "dataset", "split", "images", "images_with_grids",
                              "skipped_images", "model_note", "random_weights")} | {
        "box_rule": describe_boxes(run.cfg.boxes), "config": s["config"]}


def multi_iou(run: Run) -> dict:
    """mAP per IoU threshold (the seed's 0.05 ... 0.5 list) per method, protocol and interpolation."""
    out = {}
    for m, proto, interp, entry in run.ap_tables():
        out.setdefault(m, {}).setdefault(proto, {})[interp] = {
            "mAP_per_iou": entry.map_per_iou,
            "per_class_per_iou": {c: v.ap_per_iou for c, v in entry.per_class.items()},
        }
    return out


def sample_indices(run: Run, count: int) -> list[int]:
    """The first ``count`` images that have grids and an image file (deterministic)."""
    picks = []
    for i in run.grids.rows.tolist():
        if run.dataset.images[i].path is not None and run.dataset.images[i].num_objects:
            picks.append(i)
        if len(picks) >= count:
            break
    return picks


def _scale_ticks(grid: np.ndarray) -> list[tuple[float, str]]:
    """Colour-bar ticks of one min-max normalised map: 0 and 1 with the raw similarity they stand for."""
    return [(1.0, f"1 = max {float(grid.max()):.3f}"), (0.5, "0.5"), (0.0, f"0 = min {float(grid.min()):.3f}")]


def figure(run: Run, method: str, image_index: int, class_index: int, iou: float | None = None,
           percentile: float | None = None, image_column: bool = True, side: int | None = None) -> np.ndarray:
    """The seed's three-column figure of one sample, class and method (:data:`PRESENT` protocol): the boxes and
    their matches of :func:`surgery_core.run.pairs.panel`, as the dashboard's Compare page shows them.

    iou: TP/FP threshold (default :func:`~surgery_core.run.evaluation.view_iou`, the dashboard's);
    percentile: default the run's. image_column False: without the first column (image + GT); side: panel px."""
    rec = run.dataset.images[image_index]
    p = run.cfg.boxes.cut if percentile is None else percentile
    iou = view_iou(run.cfg) if iou is None else iou
    panel = pairs.panel(run, Cell.of(method, PRESENT, p), image_index, class_index, iou)
    d = panel.det
    labels = det_labels(d.score, d.extra["iou"], d.extra["tp"], compact=False)
    cls = run.classes[class_index]
    n_gt = int((rec.labels == class_index).sum())
    titles = (f"{weights_prefix(run)}{rec.image_id}: {cls}, {n_gt} GT box{'es' if n_gt != 1 else ''} (green)",
              f"{method}: heatmap of '{cls}' (jet, min-max normalised)",
              f"{len(d)} box{'es' if len(d) != 1 else ''} at {cut_short(p)}, {int(d.extra['tp'].sum())} TP at IoU "
              f">= {iou:g} (red dashed: score, IoU, TP/FP)")
    return three_column(run.image(image_index), rec.xyxy[rec.labels == class_index], panel.map01, d.xyxy, labels,
                        titles, scale_ticks=_scale_ticks(panel.grid),
                        scale_title="min-max normalised similarity (raw at 0 and 1)", image_column=image_column,
                        side=side)


def comparison_figure(run: Run, image_index: int, class_index: int, iou: float | None = None,
                      percentile: float | None = None, methods: tuple[str, ...] | None = None,
                      protocol: ProtocolLike = PRESENT, alpha: float = 0.5) -> np.ndarray:
    """One sample with every method of the run side by side, as on the dashboard's Compare page: the image with
    its GT boxes, then per method the heatmap (opacity ``alpha``) with GT, boxes (of ``protocol``) and
    pointing-game point."""
    rec = run.dataset.images[image_index]
    p = run.cfg.boxes.cut if percentile is None else percentile
    iou = view_iou(run.cfg) if iou is None else iou
    cls = run.classes[class_index]
    sel = rec.labels == class_index
    protocol = as_protocol(protocol)
    panels = []
    for m in methods or run.cfg.methods:
        pn = pairs.panel(run, Cell.of(m, protocol, p), image_index, class_index, iou)
        d = pn.det
        hit = "" if pn.pointing_hit is None else (", pointing hit" if pn.pointing_hit else ", pointing miss")
        best = "" if pn.best_iou is None else f", best IoU {pn.best_iou:.2f}"
        panels.append({"title": f"{m}: {len(d)} box{'es' if len(d) != 1 else ''}, {int(d.extra['tp'].sum())} TP"
                                f"{best}{hit}", "map01": pn.map01, "det_xyxy": d.xyxy,
                       "labels": det_labels(d.score, d.extra["iou"], d.extra["tp"], compact=False),
                       "point": pn.point, "hit": pn.pointing_hit})
    n_gt = int(sel.sum())
    heading = (f"{weights_prefix(run)}Image {rec.image_id}, class '{cls}' ({n_gt} GT box{'es' if n_gt != 1 else ''}; "
               f"{run.dataset.name}): boxes at {cut_short(p)} of each map, {protocol} protocol; labels: score, IoU with "
               f"the best GT box, TP/FP at IoU >= {iou:g}; ring: pointing-game point (green hit, red miss)")
    return comparison(run.image(image_index), rec.xyxy[sel], rec.xyxy[~sel],
                      f"{rec.image_id}: GT {cls} green, other classes white", panels, heading, alpha=alpha,
                      scale_ticks=[(1.0, "1 = map max"), (0.5, "0.5"), (0.0, "0 = map min")],
                      scale_title="each heatmap: min-max normalised similarity")


def weights_prefix(run: Run) -> str:
    """What a figure title starts with: 'RANDOM WEIGHTS (numbers mean nothing): ' for a random-weights run."""
    return f"{RANDOM_WEIGHTS_LABEL.upper()} (numbers mean nothing): " if run.random_weights else ""


def heatmap_pictures(image: np.ndarray, grids: dict[str, np.ndarray], classes: list[str], out: str | Path,
                     title: str) -> list[Path]:
    """``surgery heatmaps --png``: per method one PNG of the image and each class's map over it (jet, min-max
    normalised per class, bilinearly upsampled; the raw similarity at 0 and 1 in each panel's title) with the
    colour scale. grids: ``{method: [classes, gh, gw]}`` raw similarity. Returns the paths written."""
    from surgery_core.eval.maps import normalize, upsample

    out = Path(out)
    h, w = image.shape[:2]
    empty = np.zeros((0, 4))
    paths = []
    for m, grid in grids.items():
        maps = upsample(normalize(grid), w, h)
        panels = [{"title": f"'{c}': raw {float(g.min()):.3f} .. {float(g.max()):.3f}", "map01": maps[k],
                   "det_xyxy": empty} for k, (c, g) in enumerate(zip(classes, grid))]
        fig = comparison(image, empty, None, "image", panels, f"{m}: heatmap of each class ({title})",
                         scale_ticks=[(1.0, "1 = map max"), (0.5, "0.5"), (0.0, "0 = map min")],
                         scale_title="each heatmap: min-max normalised similarity")
        path = out / f"{slug(m, 40, 'method')}.png"
        atomic_write_bytes(path, encode_png(fig))
        paths.append(path)
    return paths


def main_class(rec) -> int:
    """A sample's most frequent GT class: the class its report figures are drawn for."""
    return int(np.bincount(rec.labels).argmax())


def write_evaluation(run: Run, out: str | Path, samples: int | None = None, figure_iou: float | None = None
                     ) -> dict:
    """Write every output file of ``surgery evaluate`` into ``out``; returns {name: path}.

    figure_iou: TP/FP threshold of the figures (default :func:`~surgery_core.run.evaluation.view_iou`, the
    dashboard's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = header(run)
    paths = {}
    run.ensure_boxes()  # every percentile the files need, in one pass (one progress bar)
    tables = run.ap_tables()
    paths["map_results"] = out / "map_results.json"
    write_json(paths["map_results"], head | tables.to_dict())
    paths["multi_iou_results"] = out / "multi_iou_results.json"
    write_json(paths["multi_iou_results"], head | {"ious": list(run.cfg.iou_thresholds),
                                                   "percentile": tables.percentile, "results": multi_iou(run)})
    paths["sweep_results"] = out / "sweep_results.json"
    write_json(paths["sweep_results"], head | run.sweep().to_dict())
    paths["heatmap_quality_analysis"] = out / "heatmap_quality_analysis.json"
    write_json(paths["heatmap_quality_analysis"], head | run.quality().to_dict())
    paths["corloc_results"] = out / "corloc_results.json"
    write_json(paths["corloc_results"], head | run.corloc().to_dict())
    paths["ap_by_size_results"] = out / "ap_by_size_results.json"
    write_json(paths["ap_by_size_results"], head | run.ap_by_size().to_dict())
    n = run.cfg.figure_samples if samples is None else samples
    iou = view_iou(run.cfg) if figure_iou is None else figure_iou
    figures, compared = [], []
    picks = sample_indices(run, n)
    with run.bars.bar("figures", len(picks) * (len(run.cfg.methods) + 1), "png") as bar:
        for i in picks:
            rec = run.dataset.images[i]
            cls = main_class(rec)
            for m in run.cfg.methods:
                png = out / m / f"sample_{rec.image_id}_{run.classes[cls]}.png"
                atomic_write_bytes(png, encode_png(figure(run, m, i, cls, iou)))
                figures.append(png)
                bar.update(1)
            png = out / "compare" / f"sample_{rec.image_id}_{run.classes[cls]}.png"
            atomic_write_bytes(png, encode_png(comparison_figure(run, i, cls, iou)))
            compared.append(png)
            bar.update(1)
    paths["evaluation_report"] = out / "evaluation_report.md"
    atomic_write_text(paths["evaluation_report"], markdown_report(run, head, tables, figures, out, compared, iou))
    return paths


def input_size(run: Run) -> str:
    """The input size in words: ``input 448 px`` as configured, or ``input 224 px (the model's own)``; off the
    model's own size, how the positional embedding was resized (``posembed``)."""
    cfg = run.cfg
    if not cfg.input.size:
        text = f"input {run.loaded.image_size} px (the model's own)"
    else:
        text = f"input {cfg.input.size} px"
    if not cfg.input.at_models_own_size:
        text += f", {posembed_words(cfg.input.posembed, cfg.input.resizes(run.loaded.image_size))}"
    return text


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def method_summary(run: Run, tables: APTables, q: QualityTables, ious: tuple[float, ...] = (0.05, 0.5)) -> list[str]:
    """Markdown lines: one row per method with its pointing game and mAP at ``ious`` (first interpolation,
    present protocol, the run's percentile), the best of each column in bold (none with random weights), and its
    source."""
    cfg = run.cfg
    interp = cfg.interps[0]
    proto = headline_protocol(cfg.protocols)
    ious = tuple(t for t in ious if t in cfg.iou_thresholds)
    cols = {"pointing game": {m: q.methods[m].pointing_game["overall"] for m in cfg.methods}}
    for t in ious:
        cols[f"mAP@{t:g}"] = {m: tables.entry(m, proto, interp).map_per_iou.get(iou_key(t)) for m in cfg.methods}
    cl = run.corloc()
    cols["CorLoc@0.5"] = {m: cl.entry(m, proto).corloc.get(iou_key(0.5)) for m in cfg.methods}
    best = {c: None if run.random_weights else max((v for v in vals.values() if v is not None), default=None)
            for c, vals in cols.items()}
    lines = [f"## Methods at a glance ({interp}, {proto} protocol, {tables.cut_text}"
             + (f"; {RANDOM_WEIGHTS_LABEL}: no method marked best" if run.random_weights else "") + ")", "",
             "| method | " + " | ".join(cols) + " | what it does | source |", "|---|" + "---|" * (len(cols) + 2)]
    for m in cfg.methods:
        cells = [("**" + _fmt(v) + "**") if v is not None and v == best[c] else _fmt(v)
                 for c, v in ((c, cols[c][m]) for c in cols)]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {METHODS[m].description} | {METHODS[m].source} |")
    return lines + [""]


def corloc_section(run: Run, classes: list[str]) -> list[str]:
    """Markdown lines: CorLoc per method and protocol at each tabled IoU, and per class at 0.5 (present protocol)."""
    cl = run.corloc()
    keys = [iou_key(t) for t in cl.ious]
    lines = ["", f"## CorLoc — {cl.note}", "", f"{cl.box_note}.", "",
             "| method | protocol | " + " | ".join(f"IoU {k}" for k in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for m, by_proto in cl.entries.items():
        for pr, e in by_proto.items():
            lines.append(f"| {m} | {pr} | " + " | ".join(_fmt(e.corloc[k]) for k in keys) + " |")
    proto = headline_protocol(run.cfg.protocols)
    methods = list(cl.entries)
    first = cl.entry(methods[0], proto)
    lines += ["", f"CorLoc per class at IoU 0.5 ({proto} protocol):", "",
              "| class | images | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for c in classes:
        if first.n_images.get(c):
            lines.append(f"| {c} | {first.n_images[c]} | "
                         + " | ".join(_fmt(cl.entry(m, proto).per_class[c]["0.5"]) for m in methods) + " |")
    return lines + [""]


def size_section(run: Run) -> list[str]:
    """Markdown lines: mAP of small, medium and large objects per method (first interpolation, present protocol,
    the run's first IoU and 0.5 when scored), and the ground truth's size mix."""
    by = run.ap_by_size()
    cfg = run.cfg
    interp = cfg.interps[0]
    proto = headline_protocol(cfg.protocols)
    ious = [t for t in dict.fromkeys((cfg.iou_thresholds[0], 0.5)) if t in cfg.iou_thresholds]
    sizes = list(by.tables)
    lines = [f"## AP by object size ({interp}, {proto} protocol; COCO's buckets: small <= 32², medium 32²-96², "
             "large >= 96² px² of the original image; GT of other sizes ignored, as are detections matched to it "
             "and unmatched detections of other sizes)", "",
             "| method | " + " | ".join(f"{s} mAP@{t:g}" for s in sizes for t in ious) + " |",
             "|---|" + "---|" * (len(sizes) * len(ious))]
    for m in cfg.methods:
        lines.append(f"| {m} | " + " | ".join(
            _fmt(by.tables[s].entry(m, proto, interp).map_per_iou.get(iou_key(t))) for s in sizes for t in ious) + " |")
    lines += ["", "Ground-truth boxes per class and size (a box of exactly 32² or 96² px² counts in both of its "
                  "buckets, as in COCOeval):", "", "| class | " + " | ".join(sizes) + " |",
              "|---|" + "---|" * len(sizes)]
    for c, mix in by.size_mix.items():
        if any(mix.values()):
            lines.append(f"| {c} | " + " | ".join(str(mix[s]) for s in sizes) + " |")
    return lines + [""]


def markdown_report(run: Run, head: dict, tables: APTables, figures: list[Path], out: Path,
                    compared: list[Path] = (), figure_iou: float | None = None) -> str:
    cfg = run.cfg
    q = run.quality()
    lines = [f"# CLIP Surgery evaluation: run `{head['run_hash']}`"
             + (f" ({RANDOM_WEIGHTS_LABEL.upper()})" if run.random_weights else ""), ""]
    if head["model_note"]:
        lines += [f"> **Warning.** {head['model_note']}", ""]
    m = head["model"]
    lines += [
        f"- Dataset: {head['dataset']} / {head['split']}: {head['images']} images, "
        f"{head['images_with_grids']} with heatmaps" + (f", {len(head['skipped_images'])} skipped (listed below)"
                                                         if head["skipped_images"] else ""),
        "- Model: " + (f"`{m['name']}` (" if m.get("name") else "")
        + f"`{m['arch']}`, QuickGELU {m['quickgelu']}" + (")" if m.get("name") else "") + ", "
        + (f"checkpoint sha256 `{m['checkpoint_sha256'][:16]}`" if m["checkpoint_sha256"] else
           f"**{RANDOM_WEIGHTS_LABEL}** (no checkpoint)"),
        f"- Surgery depth {cfg.surgery_depth}, {input_size(run)}"
        + (f", windows {cfg.input.window}/{cfg.input.stride or cfg.input.window} px" if cfg.input.window else ""),
        f"- Boxes: {head['box_rule']}",
        "- Protocols: " + "; ".join(PROTOCOL_NOTES[p] for p in cfg.protocols), "",
    ]
    lines += method_summary(run, tables, q)
    for interp in cfg.interps:
        lines += [f"## mAP per IoU threshold — {INTERP_NOTES[interp]}", "",
                  "| method | protocol | " + " | ".join(f"IoU {t:g}" for t in cfg.iou_thresholds)
                  + (" | AP@[.50:.95] |" if interp == "coco" else " |"),
                  "|---|---|" + "---|" * (len(cfg.iou_thresholds) + (interp == "coco"))]
        for meth in cfg.methods:
            for proto in cfg.protocols:
                e = tables.entry(meth, proto, interp)
                vals = [_fmt(v) for v in e.map_per_iou.values()]
                extra = [_fmt(e.map_50_95)] if interp == "coco" else []
                lines.append(f"| {meth} | {proto} | " + " | ".join(vals + extra) + " |")
        lines.append("")
    first = cfg.interps[0]
    t0 = cfg.iou_thresholds[0]
    proto = headline_protocol(cfg.protocols)
    lines += [f"## Per-class AP at IoU {t0:g} ({first}, {proto} protocol)", "",
              "| class | GT | " + " | ".join(cfg.methods) + " |", "|---|---|" + "---|" * len(cfg.methods)]
    for c, n_gt, vals in tables.per_class(proto, first, iou_key(t0), list(cfg.methods), list(run.classes)):
        if n_gt:
            lines.append(f"| {c} | {n_gt} | " + " | ".join(_fmt(v) for v in vals) + " |")
    lines += corloc_section(run, list(run.classes)) + size_section(run)
    lines += ["", f"## Heatmap quality (the seed's analysis; best-box IoU per (image, class) with GT; "
                  f"pointing game tolerance {cfg.pointing_tolerance_px_at_224:g} px at 224 scale)", ""]
    for meth in cfg.methods:
        mq = q.methods[meth]
        lines += [f"### {meth} — {METHODS[meth].description}", "",
                  "| percentile | mean best IoU | max best IoU | boxes / image-class | activation ratio |",
                  "|---|---|---|---|---|"]
        for row in mq.by_percentile:
            lines.append(f"| {row['percentile']:g} | {_fmt(row['mean_best_iou'])} | {_fmt(row['max_best_iou'])} | "
                         f"{row['mean_n_boxes']:.2f} | {_fmt(row['mean_activation_ratio'])} |")
        g = mq.gt_response
        lines += ["", f"GT response (raw similarity): mean {_fmt(g['mean_mean'])} ± {_fmt(g['mean_std'])}, "
                      f"max {_fmt(g['max_mean'])} ± {_fmt(g['max_std'])}. Pointing game "
                      f"{_fmt(mq.pointing_game['overall'])}, energy pointing game "
                      f"{_fmt(mq.energy_pointing_game['overall'])}.", ""]
    if figures or compared:
        iou = view_iou(cfg) if figure_iou is None else figure_iou
        lines += ["## Figures", "", f"Boxes at {cut_label(cfg.boxes.cut)}, {PRESENT} protocol, TP/FP at IoU >= "
                  f"{iou:g} (the dashboard's default). Heatmaps in jet, min-max normalised per image and class "
                  "(the colour bar gives the raw similarity at 0 and 1).", ""]
    if compared:
        lines += ["Every method side by side, one picture per sample: the image with its GT boxes (class green, "
                  "others white), then each method's heatmap with GT (green), boxes (red, dashed; score, IoU, "
                  "TP/FP) and the pointing-game point.", ""]
        for f in compared:
            rel = f.relative_to(out)
            lines.append(f"- [{rel}]({rel})")
        lines.append("")
    if figures:
        lines += ["Per method, three columns: image + GT (green, solid) | heatmap overlay (jet) with its colour bar | "
                  "GT vs predictions (red, dashed; score, IoU, TP/FP).", ""]
        for f in figures:
            rel = f.relative_to(out)
            lines.append(f"- [{rel}]({rel})")
        lines.append("")
    if head["skipped_images"]:
        lines += ["## Skipped images", ""] + [f"- {s['image_id']}: {s['reason']}" for s in head["skipped_images"]]
    return "\n".join(lines) + "\n"
