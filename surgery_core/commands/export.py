"""``surgery export boxes|grids|fiftyone RUN ...``: a stored run's boxes, heatmap grids or a FiftyOne dataset as
files other tools read. RUN is a run hash (or a unique prefix of one) in the run store; the run is reopened with
its stored configuration (:meth:`Run.open_stored`), so nothing is recomputed that the store holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgery_core.cli import _add_progress_argument, _device, _libraries, _method_list, _progress


def _open(args):
    """The stored run ``args.run`` names, reopened (libraries loaded under a status line first)."""
    bars = _progress(args)
    _libraries(bars)
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore, default_store

    store = RunStore(args.store) if args.store else default_store()
    with bars.status(f"run {args.run}: reopening from {store.root}"):
        return Run.open_stored(args.run, store, device=_device(args), show_bar=bars.enabled)


def _methods(args):
    return _method_list(args.methods) if args.methods else None


def _protocols(text: str | None):
    return None if not text else tuple(t.strip() for t in text.split(",") if t.strip())


def _cut(args):
    """The box rule of ``--box-rule`` / ``--percentile`` / ``--fixed-value`` (None: the run's own)."""
    from surgery_core.errors import SurgeryError
    from surgery_core.eval.boxes import BoxRule

    rule = args.box_rule or ("percentile" if args.percentile is not None else
                             "fixed" if args.fixed_value is not None else None)
    if rule == "otsu":
        return BoxRule("otsu")
    if rule == "fixed":
        if args.fixed_value is None:
            raise SurgeryError("--box-rule fixed needs --fixed-value V (a value of the 0-1 map)")
        if not 0.0 <= args.fixed_value <= 1.0:
            raise SurgeryError(f"--fixed-value {args.fixed_value:g}: must be between 0 and 1")
        return BoxRule("fixed", args.fixed_value)
    if rule == "percentile" and args.percentile is None:
        raise SurgeryError("--box-rule percentile needs --percentile P")
    return args.percentile


def export_boxes(run, out: Path, methods=None, protocols=None, cut=None) -> list[Path]:
    """Write a run's boxes export (:mod:`surgery_core.share.export_boxes`) and print what was written; shared by
    ``surgery export boxes`` and ``surgery evaluate --export-boxes``."""
    from surgery_core.share.export_boxes import cell_note, cell_stem, cells, write_box_export

    exported = cells(run, methods, protocols, cut)
    with run.bars.status(f"export: {len(exported)} box cells to {out}"):
        paths = write_box_export(run, out, exported)
    for c in exported:
        print(f"wrote {out / (cell_stem(c) + '.json')} and .csv: {c.method}, {c.protocol}, {cell_note(run, c)}")
    print(f"wrote {out / 'ground_truth.json'} ({len(run.grids.rows)} images) and {out / 'manifest.json'}; check with "
          f"surgery score --coco {out / 'ground_truth.json'} --detections <file> --interp <voc07|voc|coco>")
    return paths


def _cmd_boxes(args) -> int:
    run = _open(args)
    export_boxes(run, Path(args.out), _methods(args), _protocols(args.protocols), _cut(args))
    return 0


def _cmd_grids(args) -> int:
    run = _open(args)
    from surgery_core.share.export_grids import write_grids

    with run.bars.status(f"export: grids of run {run.run_hash} to {args.out}"):
        paths = write_grids(run, args.out, _methods(args), args.dtype, args.per_image)
    g = next(iter(run.grids.grids.values()))
    what = f"{len(paths) - 1} files (one per image) and manifest.json in {args.out}/" if args.per_image else args.out
    print(f"wrote {what}: {len(run.grids.rows)} images x {len(run.classes)} classes x {g.shape[2]}x{g.shape[3]} "
          f"raw grids ({args.dtype}), run {run.run_hash}, model {run.model_info['arch']}")
    return 0


def _cmd_fiftyone(args) -> int:
    run = _open(args)
    from surgery_core.share.export_fiftyone import write_fiftyone

    with run.bars.status(f"export: FiftyOne files of run {run.run_hash} to {args.out}"):
        m = write_fiftyone(run, args.out, _methods(args), args.protocol, _cut(args), args.heatmaps)
    n, h = len(m["prediction_fields"]), len(m["heatmap_fields"])
    print(f"wrote {args.out}/: ground truth, {n} prediction field{'s' * (n != 1)} ({m['protocol']}, "
          f"{m['boxes_note']}), {h} heatmap field{'s' * (h != 1)} ({m['heatmaps']} classes)")
    print(f"load it: pip install fiftyone && python {Path(args.out) / 'load_fiftyone.py'} {m['image_folder']}")
    return 0


def _rule_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--box-rule", dest="box_rule", choices=("percentile", "otsu", "fixed"),
                   help="box rule of the exported boxes (default: the run's own)")
    p.add_argument("--percentile", type=float, help="percentile of the map (box rule percentile)")
    p.add_argument("--fixed-value", dest="fixed_value", type=float,
                   help="value of the 0-1 map (box rule fixed)")


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("run", metavar="RUN", help="run hash, or a unique prefix of one, in the run store")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--methods", help="comma-separated methods (default: all of the run's)")
    p.add_argument("--store", help="run store folder (default: $SURGERY_STORE or ~/.cache/surgery/store)")
    p.add_argument("--device", help="cpu or cuda (only used when the store lacks grids)")
    _add_progress_argument(p)


def add_parser(sub) -> None:
    e = sub.add_parser("export", help="a stored run's boxes, heatmap grids or a FiftyOne dataset as files")
    esub = e.add_subparsers(dest="export_command", required=True, parser_class=type(e))

    b = esub.add_parser("boxes", help="COCO results JSON + ground truth + the CSV 'surgery score' reads, per "
                                      "method and protocol, at one box rule")
    _common(b, "output folder")
    b.add_argument("--protocols", help="comma-separated protocols (default: all of the run's)")
    _rule_arguments(b)
    b.set_defaults(func=_cmd_boxes)

    g = esub.add_parser("grids", help="every image's raw heatmap grids as .npz (numpy alone reads it)")
    _common(g, "output .npz (or folder with --per-image)")
    g.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="float32 (default, as stored) or float16 (half the size, about 3 significant digits)")
    g.add_argument("--per-image", dest="per_image", action="store_true",
                   help="one .npz per image in folder --out, for large runs")
    g.set_defaults(func=_cmd_grids)

    f = esub.add_parser("fiftyone", help="ground truth, predictions and heatmaps as files FiftyOne loads")
    _common(f, "output folder")
    f.add_argument("--protocol", default="present", choices=("present", "open"),
                   help="protocol of the predicted boxes (default present)")
    _rule_arguments(f)
    f.add_argument("--heatmaps", default="present", choices=("present", "all", "none"),
                   help="heatmap PNGs of the classes annotated in each image (default), of every class, or none")
    f.set_defaults(func=_cmd_fiftyone)
