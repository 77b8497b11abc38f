"""``surgery score``: any detector's output (CSV or COCO results JSON) scored against the annotations alone."""

from __future__ import annotations

import argparse


def _iou_arg(text: str) -> float | tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers") from None
    if not vals or any(not (0.0 < v <= 1.0) for v in vals):
        raise argparse.ArgumentTypeError(f"IoU thresholds must lie in (0, 1], got {text!r}")
    return vals[0] if len(vals) == 1 else vals


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``surgery score``."""
    from surgery_core.eval.ap import INTERPS

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dior", metavar="ROOT", help="DIOR root (release layout)")
    src.add_argument("--coco", metavar="JSON", help="COCO ground-truth JSON (e.g. the ground_truth.json of "
                                                    "'surgery export boxes'); a plain results list uses its ids")
    src.add_argument("--samples", action="store_true", help="the five real DIOR pairs shipped with the project")
    parser.add_argument("--images", help="image folder for --coco (not needed to score)")
    parser.add_argument("--split", default="test", help="train, val, test, trainval or all (default test; DIOR)")
    parser.add_argument("--detections", required=True, metavar="FILE",
                        help="CSV (image_id,class,xmin,ymin,xmax,ymax,score) or COCO results JSON")
    parser.add_argument("--iou", type=_iou_arg, default=None, metavar="T",
                        help="IoU threshold, or comma-separated thresholds (default 0.5; coco: .50:.05:.95)")
    parser.add_argument("--interp", choices=INTERPS, default="voc07",
                        help="voc07 (11-point, default), voc (all-point) or coco")
    parser.add_argument("--json", metavar="OUT", help="also write the result as JSON to this file")


def _load_dataset(args):
    """The dataset ``surgery score`` reads: ``--dior`` (a split), ``--coco`` or ``--samples``."""
    from surgery_core.data.datasets import load_coco, load_dior, load_samples

    if getattr(args, "coco", None):
        return load_coco(args.coco, args.images)
    if getattr(args, "samples", False):
        return load_samples(split=args.split)
    return load_dior(args.dior, args.split)


def run_score(args: argparse.Namespace) -> int:
    """``surgery score``: read the dataset and the detection file, print the table, optionally write JSON.

    Errors in the inputs raise :class:`~surgery_core.errors.SurgeryError` subclasses (the CLI prints them).
    """
    from surgery_core.errors import InputError
    from surgery_core.eval.scoring import format_score_table, read_detections, score
    from surgery_core.files import write_json

    dataset = _load_dataset(args)
    det = read_detections(args.detections, dataset)
    result = score(dataset, det, args.iou, args.interp)
    report = getattr(dataset, "report", None)
    skipped = len(getattr(report, "skipped_files", []) or [])
    if skipped:
        result["skipped_annotation_files"] = skipped
    print(format_score_table(result))
    if skipped:
        print(f"note: {skipped} annotation files could not be read and are left out "
              "(see `surgery dataset`)")
    if args.json:
        try:
            write_json(args.json, result)
        except OSError as exc:
            raise InputError(args.json, f"cannot write ({exc.strerror or exc})") from None
        print(f"wrote {args.json}")
    return 0


def add_parser(sub) -> None:
    sc = sub.add_parser("score", help="score an external detection file (CSV or COCO results JSON)")
    add_score_arguments(sc)
    sc.set_defaults(func=run_score)
