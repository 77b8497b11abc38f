"""The ``surgery`` command line. Each subcommand is a thin shell over library functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from surgery_core.errors import SurgeryError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``surgery evaluate: error: ...``), like every other error of the CLI."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _progress(args):
    """Phases report on stderr when it is a terminal, or when --progress asks (--no-progress: never)."""
    from surgery_core.progress import Progress

    on = getattr(args, "progress", None)
    return Progress(sys.stderr.isatty() if on is None else on)


def _libraries(bars) -> None:
    """Import torch, open_clip and the library under a status line: about 5 s on a cold start, before anything
    else can show."""
    with bars.status("loading libraries (torch, open_clip)"):
        import open_clip  # noqa: F401
        import torch  # noqa: F401

        from surgery_core.run import facade  # noqa: F401 - the rest of the library (OpenCV, pandas, pydantic)


def _cmd_dataset(args) -> int:
    from surgery_core.data.datasets import load_coco, load_dior

    if args.coco:
        ds = load_coco(args.coco, args.images)
    else:
        ds = load_dior(args.dior, args.split)
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        q = summary["quirks"]
        print(f"{ds.name} {ds.split}: {summary['images']} images, {summary['objects']} objects, "
              f"{q['images_found']} image files found")
        for c, n in summary["per_class"].items():
            print(f"  {c:<26} {n:>7}")
        print(f"quirks: zero-size boxes {q['zero_size_boxes']}, boxes past the image (clipped) "
              f"{q['boxes_past_image_clipped']}, touching the border {q['boxes_touching_border']}, "
              f"depth != 3 {q['depth_not_3']}, with XML declaration {q['with_xml_declaration']}")
        for item in q["skipped_files"] + q["skipped_objects"]:
            print(f"skipped: {item['file']}: {item['reason']}")
    return 0


def _class_names_note(classes: list[str]) -> str | None:
    """A note naming the ``--classes`` entries that are not DIOR classes (any accepted spelling), or None."""
    from surgery_core.data.classes import DIOR_CLASSES, ClassIndex

    index = ClassIndex(DIOR_CLASSES)
    unknown = [c for c in classes if index.lookup(c) is None]
    if not unknown:
        return None
    names = ", ".join(repr(c) for c in unknown)
    one = len(unknown) == 1
    return (f"{names} {'is not a DIOR class' if one else 'are not DIOR classes'}: treated as "
            f"{'a free-text query' if one else 'free-text queries'} (prompts built from the text as given)")


def _cmd_heatmaps(args) -> int:
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not classes:
        raise SurgeryError("--classes needs at least one class name")
    bars = _progress(args)
    _libraries(bars)
    import numpy as np
    import torch

    from surgery_core.data.images import read_image, squash, to_tensor
    from surgery_core.model.heatmaps import compute_heatmaps, resizes
    from surgery_core.model.methods import DEFAULT_METHODS, posembed_words
    from surgery_core.run.engine import resolve_model

    device = torch.device(_device(args))
    loaded = resolve_model(_model_config(args), device, random_weights=args.random_weights, bars=bars)
    arch = loaded.arch
    if loaded.note:
        print(f"surgery heatmaps: WARNING: {loaded.note}", file=sys.stderr)
    size = args.size or loaded.image_size
    if size % loaded.patch_size:
        raise SurgeryError(f"--size {size}: must be a multiple of the patch size {loaded.patch_size}")
    image = read_image(args.image)
    note = _class_names_note(classes)
    if note:  # after the inputs are known to be good, so that an error stays the only line
        print(f"surgery heatmaps: note: {note}", file=sys.stderr)
    x = torch.from_numpy(to_tensor(squash(image, size), loaded.mean, loaded.std))[None].to(device)
    window = args.window if args.window else None
    methods = _method_list(args.methods) if args.methods else DEFAULT_METHODS
    with bars.status(f"heatmaps: {len(methods)} methods x {len(classes)} classes, text features and one pass"):
        out = compute_heatmaps(loaded, x, classes, methods, depth=args.depth, window=window,
                               stride=args.stride, query_mode=args.query, posembed=args.posembed)
    arrays = {name: g[0].astype(np.float32) for name, g in out.grids.items()}
    np.savez(args.out, classes=np.asarray(classes), class_prob=out.probs[0].astype(np.float32), **arrays)
    k, gh, gw = next(iter(arrays.values())).shape
    weights = (f"model {loaded.name}, sha256 {loaded.checkpoint_sha256[:16]}..." if loaded.name else
               f"checkpoint {Path(args.checkpoint).name}" if args.checkpoint else
               "RANDOM weights: these heatmaps mean nothing" if args.random_weights else "shipped demo weights")
    print(f"wrote {args.out}: {len(arrays)} methods x [{k}, {gh}, {gw}] raw similarity grids "
          f"({arch}, {weights}, input {size}px, surgery depth {args.depth}, "
          f"{posembed_words(args.posembed, resizes(loaded.model.visual, ((window or size),) * 2))})")
    return 0


def _method_list(text: str) -> tuple[str, ...]:
    """``--methods a,b`` as a tuple of registered names; an unknown name is a one-line error."""
    from surgery_core.model.methods import METHODS

    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise SurgeryError(f"--methods {text}: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                           f"registered: {', '.join(METHODS)} (see 'surgery methods')")
    return names


def _cmd_methods(args) -> int:
    from surgery_core.model.methods import METHODS, PATHS, POSEMBED_RULES, SEED_METHODS

    for m in METHODS.values():
        path = PATHS.get(m.tokens)
        blocks = "whole tower" if path is None else {"last": "last block", "depth": "last --depth blocks",
                                                     "tail": "after the tower, from its block outputs"}[path.blocks]
        print(f"{m.name:<12} {m.description}")
        print(f"{'':<12} tokens: {m.tokens} ({blocks}); CLS: {m.cls}; scoring: {m.scoring}; "
              f"definition v{m.version}{'; seed method' if m.name in SEED_METHODS else ''}")
        rule = POSEMBED_RULES[m.posembed]
        print(f"{'':<12} positional embedding off the model's own grid: {rule.name} ({rule.cite})")
        print(f"{'':<12} source: {m.source}")
    return 0



# ---------------------------------------------------------------------------------------------- surgery score
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


def _cmd_demo_generate(args) -> int:
    from surgery_core.demo.scenes import generate_dataset

    summary = generate_dataset(args.out, args.seed, args.count, args.size, overwrite=args.overwrite)
    print(json.dumps({k: summary[k] for k in ("out", "seed", "count", "size", "splits")}, default=str))
    return 0


def _cmd_demo_train(args) -> int:
    from surgery_core.demo.model import WEIGHTS_DIR
    from surgery_core.demo.train import train

    recipe = {k: getattr(args, k) for k in ("seed", "scenes", "steps", "batch", "lr") if getattr(args, k) is not None}
    log = train(Path(args.out or WEIGHTS_DIR), threads=args.threads, device=args.device, **recipe)
    print(f"trained {log['steps']} steps in {log['wall_seconds']:.0f} s; final loss "
          f"{sum(log['loss_every_step'][-50:]) / 50:.4f}; weights in {args.out or WEIGHTS_DIR}")
    return 0


def _cmd_demo_card(args) -> int:
    from surgery_core.demo.card import write_model_card

    card = write_model_card()
    print(card.read_text())
    return 0


# Command-line options of a run and the configuration key each one sets (section, key); the same table names
# the option in a validation error when the value came from the command line.
RUN_OPTIONS: dict[str, tuple[str, ...]] = {
    "split": ("data", "split"), "limit": ("data", "limit"),
    "arch": ("model", "arch"), "checkpoint": ("model", "checkpoint"), "quickgelu": ("model", "quickgelu"),
    "model": ("model", "name"), "allow_sha256_mismatch": ("model", "allow_sha256_mismatch"),
    "size": ("input", "size"), "window": ("input", "window"), "stride": ("input", "stride"),
    "posembed": ("input", "posembed"),
    "percentile": ("boxes", "percentile"), "morph_kernel": ("boxes", "morph_kernel"), "score": ("boxes", "score"),
    "min_area": ("boxes", "min_area"), "nms": ("boxes", "nms_iou"), "box_resolution": ("boxes", "box_resolution"),
    "class_prob_weight": ("boxes", "class_prob_weight"), "refine": ("boxes", "refine"),
    "methods": ("methods",), "ious": ("iou_thresholds",), "depth": ("surgery_depth",),
    "figures": ("figure_samples",), "max_dets": ("boxes", "max_dets"), "protocols": ("protocols",),
    "sweep_percentiles": ("sweep_percentiles",), "box_rule": ("boxes", "rule"), "fixed_value": ("boxes", "fixed_value"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _csv_floats(flag: str, text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise SurgeryError(f"{flag} {text}: must be comma-separated numbers, e.g. 0.1,0.5") from None
    if not values:
        raise SurgeryError(f"{flag} {text!r}: needs at least one number")
    return values


def config_from_args(args) -> "RunConfig":
    """One RunConfig from ``--config FILE`` and/or flags (flags override the file).

    Errors say which option or configuration key (and file) holds the bad value and what is allowed."""
    from pydantic import ValidationError

    from surgery_core.run.config import RunConfig, explain_validation_error, read_config_file

    doc = read_config_file(args.config) if args.config else {}
    names: dict[tuple[str, ...], str] = {}  # configuration paths whose values came from the command line

    def put(path: tuple[str, ...], value, flag: str) -> None:
        target = doc
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):  # the file's section is not an object: validation names it
                return
        target[path[-1]] = value
        names[path] = flag

    if args.dior:
        put(("data", "kind"), "dior", "--dior")
        put(("data", "root"), args.dior, "--dior")
    elif args.coco:
        put(("data", "kind"), "coco", "--coco")
        put(("data", "root"), args.coco, "--coco")
        put(("data", "images"), args.images, "--images")
    elif args.samples:
        put(("data", "kind"), "samples", "--samples")
        put(("data", "root"), None, "--samples")
    for dest, path in RUN_OPTIONS.items():
        value = getattr(args, dest)
        if value is None or value is False:  # not given (store_true flags only ever turn a setting on)
            continue
        if dest == "methods":
            value = _method_list(value)
        elif dest in ("ious", "sweep_percentiles"):
            value = _csv_floats(_flag(dest), value)
        elif dest == "protocols":
            value = tuple(t.strip() for t in value.split(",") if t.strip())
        put(path, value, _flag(dest))
    try:
        return RunConfig.model_validate(doc)
    except ValidationError as exc:
        raise SurgeryError(explain_validation_error(exc, names, args.config)) from None


def _model_config(args) -> "RunConfig":
    """A configuration holding only the model options of ``args`` (``surgery heatmaps``), validated like a run's."""
    from pydantic import ValidationError

    from surgery_core.run.config import RunConfig, explain_validation_error

    doc, names = {}, {}
    for dest in ("model", "arch", "checkpoint", "quickgelu", "allow_sha256_mismatch"):
        value = getattr(args, dest)
        if value is not None and value is not False:
            doc[RUN_OPTIONS[dest][1]] = value
            names[RUN_OPTIONS[dest]] = _flag(dest)
    try:
        return RunConfig.model_validate({"model": doc})
    except ValidationError as exc:
        raise SurgeryError(explain_validation_error(exc, names)) from None


def _open_run(args):
    """The run of ``args`` (configuration first, so bad options fail before any work), with progress.

    Under torchrun every rank first computes its share of the grids into the store (``distributed``); then
    rank 0 opens the run as one process would and the other ranks get None (they print nothing more)."""
    bars = _progress(args)
    _libraries(bars)
    from surgery_core.run.distributed import launch_from_env, run_sharded
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore, default_store, default_store_root

    cfg = config_from_args(args)
    launch = launch_from_env()
    if launch is not None:
        device = run_sharded(cfg, args.store or default_store_root(), launch, device=args.device,
                             batch_size=args.batch_size, workers=args.workers, progress=bars.enabled,
                             random_weights=args.random_weights)
        if not launch.is_main:
            return None
    else:
        device = _device(args)
    store = RunStore(args.store) if args.store else default_store()
    run = Run.open(cfg, store, device=device, workers=args.workers, batch_size=args.batch_size,
                   show_bar=bars.enabled, random_weights=args.random_weights)
    return cfg, store, run


def _device(args) -> str:
    """``--device`` checked against what this machine has (default: cuda when present, else cpu)."""
    import torch

    if not args.device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        raise SurgeryError(f"--device {args.device}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SurgeryError(f"--device {args.device}: no CUDA device is available here (use cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SurgeryError(f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return args.device


def _cmd_evaluate(args) -> int:
    opened = _open_run(args)
    if opened is None:  # a torchrun rank other than 0: its share is in the store
        return 0
    cfg, store, run = opened
    from surgery_core.eval.boxes import cut_label
    from surgery_core.run.evaluation import describe_cap
    from surgery_core.share.report import write_evaluation

    out = Path(args.out) if args.out else Path("surgery_eval") / cfg.run_hash
    paths = write_evaluation(run, out)
    if args.export_boxes:
        from surgery_core.commands.export import export_boxes

        paths |= {f"boxes/{p.name}": p for p in export_boxes(run, out / "boxes")}
    s = run.summary()
    print(f"run {cfg.run_hash}: {s['images_with_grids']}/{s['images']} images with heatmaps "
          f"({s['computed_now']} computed now, {s['reused']} from the store {store.root})")
    if s["model_note"]:
        print(f"WARNING: {s['model_note']}")
    for sk in s["skipped_images"]:
        print(f"skipped image {sk['image_id']}: {sk['reason']}")
    for sk in s["skipped_annotations"]:
        print(f"skipped annotation {sk['file']}: {sk['reason']}")
    tables = run.ap_tables()
    interp = cfg.interps[0]
    print(f"mAP ({interp}, {cut_label(cfg.boxes.cut)}, {describe_cap(cfg.boxes.max_dets)}) per IoU:")
    for m in cfg.methods:
        for proto in cfg.protocols:
            vals = tables.entry(m, proto, interp).map_per_iou
            print(f"  {m:<9} {proto:<8} " + "  ".join(f"@{k}={'n/a' if v is None else f'{v:.4f}'}"
                                                      for k, v in vals.items()))
    cl = run.corloc()
    print(f"CorLoc at IoU 0.5 (share of a class's images whose top box of the class hits; mean over classes; "
          f"{cut_label(cfg.boxes.cut)}):")
    for m in cfg.methods:
        print(f"  {m:<9} " + "  ".join(f"{pr}={'n/a' if (v := cl.entry(m, pr).corloc['0.5']) is None else f'{v:.4f}'}"
                                       for pr in cfg.protocols))
    q = run.quality().methods
    print("pointing game: " + ", ".join(f"{m} {q[m].pointing_game['overall']:.3f}" for m in cfg.methods
                                        if q[m].pointing_game['overall'] is not None))
    print(f"wrote {len(paths)} reports and figures to {out}/")
    return 0


def _cmd_report(args) -> int:
    if args.samples_count < 0:
        raise SurgeryError(f"--samples-count {args.samples_count}: must be 0 or more")
    if args.runs:  # stored runs compared in one file (surgery_core/commands/runs.py)
        from surgery_core.commands.runs import report_runs

        return report_runs(args)
    opened = _open_run(args)
    if opened is None:  # a torchrun rank other than 0: its share is in the store
        return 0
    cfg, store, run = opened
    from surgery_core.share.bundle import write_report
    from surgery_core.share.html import default_samples

    out = Path(args.out) if args.out else Path(f"surgery_report_{cfg.run_hash}.html")
    samples = default_samples(run, args.samples_count) if args.samples_count else []
    with run.bars.status(f"report: {len(samples)} samples x {len(cfg.methods)} methods, charts, HTML"):
        paths = write_report(run, out, args.zip, samples=samples, include_paths=args.include_paths)
    if run.model_note:
        print(f"WARNING: {run.model_note}")
    if args.samples_count and len(samples) < args.samples_count:
        print(f"note: only {len(samples)} of {args.samples_count} samples have an image file and objects")
    for kind, path in paths.items():
        print(f"wrote {kind} {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"run {cfg.run_hash}: {len(samples)} samples; absolute paths "
          f"{'kept' if args.include_paths else 'cut to base names'}")
    return 0


_POSEMBED_HELP = ("positional-embedding resize when the input grid is not the model's own: official = as each "
                  "method's official code (one tower pass per rule, default), shared = one bicubic resize for "
                  "every method (one pass, faster, not official)")


def _add_run_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--config", help="run configuration JSON (flags override it)")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--dior", help="DIOR root (default: the demo scenes)")
    src.add_argument("--coco", help="COCO annotation JSON")
    src.add_argument("--samples", action="store_true", help="the five real DIOR pairs shipped with the project")
    e.add_argument("--images", help="image folder for --coco")
    e.add_argument("--split", help="train, val, test, trainval or all")
    e.add_argument("--limit", type=int, help="first N images of the split")
    _add_model_arguments(e)
    e.add_argument("--methods", help="comma-separated heatmap methods (default: every registered method; see "
                                     "'surgery methods')")
    e.add_argument("--depth", type=int, help="surgery depth (default 6)")
    e.add_argument("--size", type=int, help="input size in px")
    e.add_argument("--window", type=int, help="sliding-window size in px")
    e.add_argument("--stride", type=int, help="sliding-window stride in px")
    e.add_argument("--posembed", choices=["official", "shared"], help=_POSEMBED_HELP)
    e.add_argument("--percentile", type=float, help="heatmap threshold percentile (default 90)")
    e.add_argument("--box-rule", dest="box_rule", choices=["percentile", "otsu", "fixed"],
                   help="how each map is thresholded: percentile (default, --percentile), otsu (Otsu's threshold "
                        "of the min-max-normalised map, 256 bins) or fixed (--fixed-value of the 0-1 map)")
    e.add_argument("--fixed-value", dest="fixed_value", type=float,
                   help="threshold of --box-rule fixed, a 0-1 map value (default 0.5)")
    e.add_argument("--morph-kernel", dest="morph_kernel", type=int)
    e.add_argument("--score", choices=["mean", "max"])
    e.add_argument("--class-prob-weight", dest="class_prob_weight", action="store_true")
    e.add_argument("--min-area", dest="min_area", type=float)
    e.add_argument("--nms", type=float, help="NMS IoU (default off)")
    e.add_argument("--box-resolution", dest="box_resolution", type=int)
    e.add_argument("--refine", choices=["none", "pamr"],
                   help="refine maps before the threshold: pamr = NACLIP's PAMR, 10 iterations, dilations 8, 16")
    e.add_argument("--ious", help="comma-separated IoU thresholds (default 0.05,0.1,0.15,0.2,0.3,0.5)")
    e.add_argument("--max-dets", dest="max_dets", type=int,
                   help="at most N boxes per image (all classes) per method, protocol and percentile, highest "
                        "scores kept, as COCO's maxDets (default 100; 0 = no cap)")
    e.add_argument("--protocols", help="comma-separated protocols to compute: present, open (default both); "
                                       "boxes of a protocol left out are never cut")
    e.add_argument("--sweep-percentiles", dest="sweep_percentiles",
                   help="comma-separated heatmap percentiles of the threshold sweep (default 50,55,...,95); "
                        "boxes are cut only at these and --percentile")
    e.add_argument("--figures", type=int, help="samples drawn as figures (default 10): per method a three-column "
                                               "PNG, and one PNG of every method side by side")
    e.add_argument("--random-weights", dest="random_weights", action="store_true",
                   help="allow an architecture without --checkpoint: random weights, for tests only")
    _add_progress_argument(e)


def _add_model_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--model", metavar="NAME", help="a catalog or registered model (see 'surgery models'): sets "
                                                  "architecture, QuickGELU and checkpoint together")
    e.add_argument("--arch", help="open_clip architecture, e.g. ViT-B-32 (default: the shipped demo model)")
    e.add_argument("--checkpoint", help="local checkpoint file (state dict); with --model: that model's file "
                                        "kept elsewhere (its sha256 is checked)")
    e.add_argument("--quickgelu", action="store_true", help="QuickGELU activations (OpenAI CLIP and models "
                                                            "fine-tuned from it: RemoteCLIP, GeoRSCLIP B/L)")
    e.add_argument("--allow-sha256-mismatch", dest="allow_sha256_mismatch", action="store_true",
                   help="with --model: load a file whose sha256 differs from the published one (the run says so)")


def _add_progress_argument(e: argparse.ArgumentParser) -> None:
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars and status lines on stderr (default: when stderr is a terminal)")


def _add_execution_arguments(p: argparse.ArgumentParser) -> None:
    """Where and how a run executes: none of these change its numbers, so none is part of the run hash."""
    p.add_argument("--store", help="run store folder (default: $SURGERY_STORE or ~/.cache/surgery/store)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--workers", type=int, help="image-decoding worker processes")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="surgery", description="CLIP Surgery heatmaps, boxes and metrics.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("dataset", help="read a dataset's annotations and print counts and quirks")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--dior", help="DIOR root (release layout)")
    src.add_argument("--coco", help="COCO-format annotation JSON")
    d.add_argument("--images", help="image folder for --coco")
    d.add_argument("--split", default="test", help="train, val, test, trainval or all (DIOR)")
    d.add_argument("--json", action="store_true", help="print a JSON object")
    d.set_defaults(func=_cmd_dataset)

    h = sub.add_parser("heatmaps", help="the raw heatmap grids of one image (every method by default), as .npz")
    _add_model_arguments(h)
    h.add_argument("--random-weights", dest="random_weights", action="store_true",
                   help="allow an architecture without --checkpoint: random weights, for tests only")
    h.add_argument("--image", required=True)
    h.add_argument("--classes", required=True,
                   help="comma-separated DIOR class names; other text is allowed and used as a free-text query")
    h.add_argument("--out", required=True, help="output .npz")
    h.add_argument("--size", type=int, help="input size in px (default: the model's own)")
    h.add_argument("--window", type=int, help="sliding-window size in px (default: none)")
    h.add_argument("--stride", type=int, help="sliding-window stride in px (default: the window)")
    h.add_argument("--posembed", choices=["official", "shared"], default="official", help=_POSEMBED_HELP)
    h.add_argument("--depth", type=int, default=6, help="surgery depth: final blocks of the v-v and GEM paths")
    h.add_argument("--methods", help="comma-separated heatmap methods (default: every registered method; see 'surgery methods')")
    h.add_argument("--query", action="store_true",
                   help="single-text feature surgery per name (free-text queries) instead of class-set mode")
    h.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    _add_progress_argument(h)
    h.set_defaults(func=_cmd_heatmaps)

    e = sub.add_parser("evaluate", help="heatmaps, boxes, AP, sweeps, quality and figures for a run")
    _add_run_arguments(e)
    e.add_argument("--out", help="output folder (default: ./surgery_eval/<run hash>)")
    e.add_argument("--export-boxes", dest="export_boxes", action="store_true",
                   help="also write every method's and protocol's boxes to OUT/boxes/ as COCO results, ground truth "
                        "and CSV (see 'surgery export boxes')")
    _add_execution_arguments(e)
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("report", help="one self-contained HTML report of a run (and optionally a .zip of it)")
    _add_run_arguments(r)
    r.add_argument("--out", help="output HTML (default: ./surgery_report_<run hash>.html)")
    r.add_argument("--zip", help="also write a .zip: numbers as JSON and CSV, figures as PNG, the HTML")
    r.add_argument("--samples-count", dest="samples_count", type=int, default=4,
                   help="images drawn with every method of the run side by side (default 4; 0 = none)")
    r.add_argument("--include-paths", dest="include_paths", action="store_true",
                   help="keep absolute paths (dataset root, checkpoint) instead of their base names")
    from surgery_core.commands.runs import add_report_arguments

    add_report_arguments(r)
    _add_execution_arguments(r)
    r.set_defaults(func=_cmd_report)

    ms = sub.add_parser("methods", help="list the heatmap methods: what each does and its source")
    ms.set_defaults(func=_cmd_methods)

    sc = sub.add_parser("score", help="score an external detection file (CSV or COCO results JSON)")
    add_score_arguments(sc)
    sc.set_defaults(func=run_score)

    demo = sub.add_parser("demo", help="the embedded demo world: synthetic scenes and a small CLIP")
    dsub = demo.add_subparsers(dest="demo_command", required=True)
    g = dsub.add_parser("generate", help="write synthetic aerial scenes in DIOR's release layout")
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--size", type=int, default=224, help="scene side in px")
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=_cmd_demo_generate)
    t = dsub.add_parser("train", help="train the demo CLIP on scene captions (CPU, deterministic per seed)")
    t.add_argument("--out", help="output folder (default: the shipped weights folder)")
    for name, kind in (("seed", int), ("scenes", int), ("steps", int), ("batch", int), ("lr", float)):
        t.add_argument(f"--{name}", type=kind, help="default: the shipped recipe (surgery_core.demo.train.train)")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_demo_train)
    c = dsub.add_parser("card", help="evaluate the shipped demo weights and rewrite their model card")
    c.set_defaults(func=_cmd_demo_card)

    import importlib

    from surgery_core import commands

    for name in commands.MODULES:  # subcommand groups kept in modules of their own
        importlib.import_module(f"surgery_core.commands.{name}").add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SurgeryError as exc:
        print(f"surgery {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be written or read (a folder that does not exist, no space, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"surgery {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"surgery {args.command}: interrupted (everything already written to the run store is kept)",
              file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
