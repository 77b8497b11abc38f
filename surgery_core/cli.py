"""The ``surgery`` command line. Each subcommand is a thin shell over library functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from surgery_core.errors import InputError, SurgeryError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``surgery evaluate: error: ...``), like every other error of the CLI."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def at_least(low: float, kind=int, strict: bool = False):
    """An argparse type: a number of ``kind`` that is at least ``low`` (above it with ``strict``); a bad value is
    the usual one-line usage error naming the option."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {low:g}, got {text}")
        return value
    return parse


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
        raise InputError(None, "--classes needs at least one class name")
    bars = _progress(args)
    _libraries(bars)
    import numpy as np
    import torch

    from surgery_core.data.images import read_image, squash, to_tensor
    from surgery_core.model.encoder import Resolution, resizes
    from surgery_core.model.heatmaps import compute_heatmaps
    from surgery_core.model.identity import RANDOM_WEIGHTS_NOTE, is_random_weights
    from surgery_core.model.methods import DEFAULT_METHODS, posembed_words
    from surgery_core.run.engine import resolve_model

    _check_input_options(args)
    device = torch.device(_device(args))
    loaded = resolve_model(_model_config(args), device, random_weights=args.random_weights, bars=bars)
    arch = loaded.arch
    if loaded.note:
        print(f"surgery heatmaps: WARNING: {loaded.note}", file=sys.stderr)
    size = args.size or loaded.image_size
    if size % loaded.patch_size:
        raise InputError(None, f"--size {size}: must be a multiple of the patch size {loaded.patch_size}")
    image = read_image(args.image)
    note = _class_names_note(classes)
    if note:  # after the inputs are known to be good, so that an error stays the only line
        print(f"surgery heatmaps: note: {note}", file=sys.stderr)
    x = torch.from_numpy(to_tensor(squash(image, size), loaded.mean, loaded.std))[None].to(device)
    resolution = Resolution.of(size, args.window, args.stride, loaded.patch_size)
    methods = _method_list(args.methods) if args.methods else DEFAULT_METHODS
    with bars.status(f"heatmaps: {len(methods)} methods x {len(classes)} classes, text features and one pass"):
        out = compute_heatmaps(loaded, x, classes, methods, depth=args.depth, resolution=resolution,
                               query_mode=args.query, posembed=args.posembed)
    arrays = {name: g[0].astype(np.float32) for name, g in out.grids.items()}
    np.savez(args.out, classes=np.asarray(classes), class_prob=out.probs[0].astype(np.float32), **arrays)
    k, gh, gw = next(iter(arrays.values())).shape
    random = is_random_weights(loaded.identity)
    weights = (f"model {loaded.name}, sha256 {loaded.checkpoint_sha256[:16]}..." if loaded.name else
               f"checkpoint {Path(args.checkpoint).name}" if args.checkpoint else
               "RANDOM weights: these heatmaps mean nothing" if random else "shipped demo weights")
    print(f"wrote {args.out}: {len(arrays)} methods x [{k}, {gh}, {gw}] raw similarity grids "
          f"({arch}, {weights}, input {size}px, surgery depth {args.depth}, "
          f"{posembed_words(args.posembed, resizes(loaded.model.visual, (resolution.crop,) * 2))})")
    if args.png:
        from surgery_core.share.report import heatmap_pictures

        title = f"{arch}, {weights}, input {size}px, surgery depth {args.depth}"
        written = heatmap_pictures(image, arrays, classes, args.png, title)
        print(f"wrote {len(written)} PNGs (each method's maps over the image, with the colour scale) to {args.png}/")
    warning = RANDOM_WEIGHTS_NOTE if random else _off_domain_note(loaded, args.image)
    if warning:  # last, as `surgery evaluate` says it
        print(f"WARNING: {warning}")
    return 0


def _check_input_options(args) -> None:
    """``--size``, ``--window``, ``--stride`` and ``--depth`` of ``surgery heatmaps`` under the rules of a run's
    configuration (the same message as ``surgery evaluate``'s), before any work."""
    from pydantic import ValidationError

    from surgery_core.run.config import InputConfig, RunConfig, explain_validation_error

    try:
        InputConfig(size=args.size, window=args.window, stride=args.stride)
        RunConfig(surgery_depth=args.depth)
    except ValidationError as exc:
        names = {("size",): "--size", ("window",): "--window", ("stride",): "--stride", ("surgery_depth",): "--depth"}
        model = RunConfig if any(e["loc"] == ("surgery_depth",) for e in exc.errors()) else InputConfig
        raise InputError(None, explain_validation_error(exc, names, model=model)) from None


def _off_domain_note(loaded, image: str) -> str:
    """The shipped model's warning when it is run on an image that is not one of the scenes it was made for (the
    demo model on a real photograph), as ``surgery evaluate --samples`` says it; '' otherwise."""
    from surgery_core.plugins import shipped_model

    shipped = shipped_model(loaded.arch)
    if shipped is None or loaded.checkpoint_sha256 is None or loaded.checkpoint != str(shipped.weights):
        return ""
    from surgery_core.demo.scenes.dataset import is_complete

    if any(is_complete(folder) for folder in Path(image).resolve().parents):  # a generated demo scene
        return ""
    return shipped.note_off_domain


def _method_list(text: str) -> tuple[str, ...]:
    """``--methods a,b`` as a tuple of registered names; an unknown name is a one-line error."""
    from surgery_core.model.methods import METHODS

    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise InputError(None, f"--methods {text}: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                           f"registered: {', '.join(METHODS)} (see 'surgery methods')")
    return names


def _cmd_methods(args) -> int:
    from surgery_core.model.methods import METHODS, PATHS, POSEMBED_RULES, SEED_METHODS

    for m in METHODS.values():
        path = PATHS.get(m.tokens)
        blocks = "whole tower" if path is None else {"last": "last block", "depth": "last --depth blocks",
                                                     "tail": "after the tower, from its block outputs"}[path.blocks]
        print(f"{m.name:<12} {m.description}")
        print(f"{'':<12} tokens: {m.tokens} ({blocks}); CLS: {m.cls}; scoring: {m.scoring_name}; "
              f"definition v{m.version}{'; seed method' if m.name in SEED_METHODS else ''}")
        rule = POSEMBED_RULES[m.posembed]
        print(f"{'':<12} positional embedding off the model's own grid: {rule.name} ({rule.cite})")
        print(f"{'':<12} source: {m.source}")
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
        raise InputError(None, f"{flag} {text}: must be comma-separated numbers, e.g. 0.1,0.5") from None
    if not values:
        raise InputError(None, f"{flag} {text!r}: needs at least one number")
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
        raise InputError(None, explain_validation_error(exc, names, args.config)) from None


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
        raise InputError(None, explain_validation_error(exc, names)) from None


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
        raise InputError(None, f"--device {args.device}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"--device {args.device}: no CUDA device is available here (use cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(None, f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
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
    print(f"pointing game{' (RANDOM WEIGHTS: meaningless)' if run.random_weights else ''}: "
          + ", ".join(f"{m} {q[m].pointing_game['overall']:.3f}" for m in cfg.methods
                      if q[m].pointing_game['overall'] is not None))
    print(f"wrote {len(paths)} reports and figures to {out}/")
    _closing_notes(run)
    return 0


def _closing_notes(run) -> None:
    """What must not scroll away, repeated at the end: images left out of the run, and the model warning."""
    s = run.summary()
    if s["skipped_images"]:
        print(f"note: {len(s['skipped_images'])} of {s['images']} images were left out (no image file or "
              f"unreadable; listed above and in the reports); the numbers cover the other {s['images_with_grids']}")
    if run.model_note:
        print(f"WARNING: {run.model_note}")


def _cmd_report(args) -> int:
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
    if args.samples_count and len(samples) < args.samples_count:
        print(f"note: only {len(samples)} of {args.samples_count} samples have an image file and objects")
    for kind, path in paths.items():
        print(f"wrote {kind} {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"run {cfg.run_hash}: {len(samples)} samples; absolute paths "
          f"{'kept' if args.include_paths else 'cut to base names'}")
    _closing_notes(run)
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
    p.add_argument("--workers", type=at_least(0), help="image-decoding worker processes")
    p.add_argument("--batch-size", dest="batch_size", type=at_least(1), default=64)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="surgery", description="CLIP Surgery heatmaps, boxes and metrics.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    h = sub.add_parser("heatmaps", help="the raw heatmap grids of one image (every method by default), as .npz")
    _add_model_arguments(h)
    h.add_argument("--random-weights", dest="random_weights", action="store_true",
                   help="allow an architecture without --checkpoint: random weights, for tests only")
    h.add_argument("--image", required=True)
    h.add_argument("--classes", required=True,
                   help="comma-separated DIOR class names; other text is allowed and used as a free-text query")
    h.add_argument("--out", required=True, help="output .npz")
    h.add_argument("--png", metavar="DIR", help="also write pictures: per method its map of each class over the "
                                                "image, with the colour scale")
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
    r.add_argument("--samples-count", dest="samples_count", type=at_least(0), default=4,
                   help="images drawn with every method of the run side by side (default 4; 0 = none)")
    r.add_argument("--include-paths", dest="include_paths", action="store_true",
                   help="keep absolute paths (dataset root, checkpoint) instead of their base names")
    from surgery_core.commands.runs import add_report_arguments

    add_report_arguments(r)
    _add_execution_arguments(r)
    r.set_defaults(func=_cmd_report)

    ms = sub.add_parser("methods", help="list the heatmap methods: what each does and its source")
    ms.set_defaults(func=_cmd_methods)


    import importlib

    from surgery_core import commands

    for name in commands.MODULES:  # subcommand groups kept in modules of their own
        importlib.import_module(f"surgery_core.commands.{name}").add_parser(sub)
    _name_commands(p)
    return p


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Every subcommand (nested ones too) records its full name, so that an error of the library is prefixed
    as argparse prefixes its own (``surgery demo generate: error: ...``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                sp.set_defaults(command_name=sp.prog)
                _name_commands(sp)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SurgeryError as exc:
        print(f"{args.command_name}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be written or read (a folder that does not exist, no space, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{args.command_name}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{args.command_name}: interrupted (everything already written to the run store is kept)",
              file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
