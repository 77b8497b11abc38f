"""A run's report as a .zip: the HTML report, the numbers as JSON and CSV, the sample figures as PNG.

Built from the same parts as :func:`surgery_core.share.html.build_report_html`; deterministic (fixed member
times, no timestamps), so the same run and selection give the same bytes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from surgery_core.files import atomic_write_bytes
from surgery_core.share.html import Parts, collect, render_html
from surgery_core.share.portable import dumps, zip_bytes

if TYPE_CHECKING:
    from surgery_core.run.facade import Run


def _csv(rows: list[list]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(["" if v is None else (f"{v:.10g}" if isinstance(v, float) else v) for v in r])
    return buf.getvalue().encode()


def _per_class_csv(p: Parts, cfg) -> bytes:
    rows = [["protocol", "interp", "iou", "percentile", "class", "n_gt", *p.methods, "best"]]
    for pr in cfg.protocols:
        for it in cfg.interps:
            for key in p.tables.columns(it):
                for c, n_gt, vals in p.tables.per_class(pr, it, key, p.methods, p.classes):
                    nums = [v for v in vals if v is not None]
                    best = ";".join(m for m, v in zip(p.methods, vals) if nums and v == max(nums) > min(nums))
                    rows.append([pr, it, key, p.tables.percentile, c, n_gt, *vals, best])
    return _csv(rows)


def _frame_csv(frame) -> bytes:
    """A long result table (``to_frame()``) as CSV, its header first."""
    return _csv([list(frame.columns)] + [list(r) for r in frame.itertuples(index=False)])


def build_report_zip(run: "Run", samples: list[tuple[int, int]] | None = None, include_paths: bool = False) -> bytes:
    """A .zip of the report: ``report.html``, the numbers as JSON (``numbers/``) and CSV (``tables/``), the
    sample figures as WebP (``images/<image>_<class>/image.webp`` and ``<method>.webp``) and a README.
    Deterministic."""
    p = collect(run, samples, include_paths)
    return _zip_from_parts(p, run, render_html(p, run))


def _zip_from_parts(p: Parts, run, html_text: str) -> bytes:
    cfg = run.cfg
    head = p.head
    sample_docs = []
    images = []
    for s in p.samples:
        members = {m: f"images/{s.stem}/{m}.webp" for m in s.figures}
        images += [(members[m], pic) for m, pic in s.figures.items()]
        if s.picture:
            members = {"image": f"images/{s.stem}/image.webp"} | members
            images.append((members["image"], s.picture))
        sample_docs.append({"image_index": s.image_index, "image_id": s.image_id, "class_index": s.class_index,
                            "class": s.class_name, "n_gt": s.n_gt, "figure_iou": p.figure_iou,
                            "percentile": p.tables.percentile, "images": members, "note": s.note})
    numbers = [
        ("numbers/config.json", {"run_hash": head["run_hash"], "heatmap_key": head["heatmap_key"],
                                 "model": head["model"], "box_rule": head["box_rule"], "config": head["config"]}),
        ("numbers/map_results.json", head | p.tables.to_dict()),
        ("numbers/multi_iou_results.json", head | {"ious": list(cfg.iou_thresholds),
                                                   "percentile": p.tables.percentile, "results": p.multi}),
        ("numbers/sweep_results.json", head | p.sweep.to_dict()),
        ("numbers/heatmap_quality_analysis.json", head | p.quality.to_dict()),
        ("numbers/samples.json", {"samples": sample_docs}),
    ]
    readme = (f"CLIP Surgery report of run {head['run_hash']}\n\n"
              "report.html                 the self-contained report (opens offline)\n"
              "numbers/*.json              the numbers (same files as `surgery evaluate`), config and samples\n"
              "tables/map.csv              mAP per method, protocol, interp and IoU\n"
              "tables/per_class_ap.csv     AP per class x method, per protocol, interp and IoU\n"
              "tables/sweep.csv            mAP per method, protocol, interp, percentile and IoU\n"
              "images/<image>_<class>/     image.webp (the image and its GT boxes), then per method its heatmap |"
              " boxes figure\n")
    members = [("README.txt", readme.encode()), ("report.html", html_text.encode())]
    members += [(n, (dumps(d) + "\n").encode()) for n, d in numbers]
    members += [("tables/map.csv", _frame_csv(p.tables.to_frame())), ("tables/per_class_ap.csv", _per_class_csv(p, cfg)),
                ("tables/sweep.csv", _frame_csv(p.sweep.to_frame()))]
    members += images
    return zip_bytes(members)


def write_report(run: "Run", out_html: str | Path | None, out_zip: str | Path | None = None,
                 samples: list[tuple[int, int]] | None = None, include_paths: bool = False) -> dict[str, Path]:
    """Build the parts once and write the HTML and/or the zip atomically; returns {"html"/"zip": path}."""
    p = collect(run, samples, include_paths)
    text = render_html(p, run)
    out = {}
    if out_html:
        out["html"] = Path(out_html)
        atomic_write_bytes(out["html"], text.encode())
    if out_zip:
        out["zip"] = Path(out_zip)
        atomic_write_bytes(out["zip"], _zip_from_parts(p, run, text))
    return out
