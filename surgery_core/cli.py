"""The ``surgery`` command line. Each subcommand is a thin shell over library functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import SurgeryError


def _cmd_dataset(args) -> int:
    from .datasets import load_coco, load_dior

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


def _cmd_heatmaps(args) -> int:
    import numpy as np
    import torch

    from .heatmaps import DEFAULT_METHODS, compute_heatmaps
    from .images import read_image, squash, to_tensor
    from .models import load_model

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loaded = load_model(args.arch, args.checkpoint, args.quickgelu, device)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not classes:
        raise SurgeryError("--classes needs at least one class name")
    size = args.size or loaded.image_size
    if size % loaded.patch_size:
        raise SurgeryError(f"--size {size} is not a multiple of the patch size {loaded.patch_size}")
    image = read_image(args.image)
    x = torch.from_numpy(to_tensor(squash(image, size), loaded.mean, loaded.std))[None].to(device)
    window = args.window if args.window else None
    methods = _method_list(args.methods) if args.methods else DEFAULT_METHODS
    out = compute_heatmaps(loaded, x, classes, methods, depth=args.depth, window=window,
                           stride=args.stride, query_mode=args.query)
    arrays = {name: g[0].astype(np.float32) for name, g in out.grids.items()}
    np.savez(args.out, classes=np.asarray(classes), class_prob=out.probs[0].astype(np.float32), **arrays)
    k, gh, gw = next(iter(arrays.values())).shape
    print(f"wrote {args.out}: {len(arrays)} methods x [{k}, {gh}, {gw}] raw similarity grids "
          f"({args.arch}, input {size}px, surgery depth {args.depth})")
    return 0


def _method_list(text: str) -> tuple[str, ...]:
    """``--methods a,b`` as a tuple of registered names; an unknown name is a one-line error."""
    from .methods import METHODS

    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise SurgeryError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                           f"registered: {', '.join(METHODS)} (see 'surgery methods')")
    return names


def _cmd_methods(args) -> int:
    from .methods import METHODS, PATHS, SEED_METHODS

    for m in METHODS.values():
        path = PATHS.get(m.tokens)
        blocks = "whole tower" if path is None else ("last block" if path.blocks == "last" else "last --depth blocks")
        print(f"{m.name:<12} {m.description}")
        print(f"{'':<12} tokens: {m.tokens} ({blocks}); CLS: {m.cls}; scoring: {m.scoring}; "
              f"definition v{m.version}{'; seed method' if m.name in SEED_METHODS else ''}")
        print(f"{'':<12} source: {m.source}")
    return 0


def _cmd_demo_generate(args) -> int:
    from .demo.scenes import generate_dataset

    summary = generate_dataset(args.out, args.seed, args.count, args.size, overwrite=args.overwrite)
    print(json.dumps({k: summary[k] for k in ("out", "seed", "count", "size", "splits")}, default=str))
    return 0


def _cmd_demo_train(args) -> int:
    from .demo.model import WEIGHTS_DIR
    from .demo.train import train

    recipe = {k: getattr(args, k) for k in ("seed", "scenes", "steps", "batch", "lr") if getattr(args, k) is not None}
    log = train(Path(args.out or WEIGHTS_DIR), threads=args.threads, device=args.device, **recipe)
    print(f"trained {log['steps']} steps in {log['wall_seconds']:.0f} s; final loss "
          f"{sum(log['loss_every_step'][-50:]) / 50:.4f}; weights in {args.out or WEIGHTS_DIR}")
    return 0


def _cmd_demo_card(args) -> int:
    from .demo.card import write_model_card

    card = write_model_card()
    print(card.read_text())
    return 0


def config_from_args(args) -> "RunConfig":
    """One RunConfig from ``--config FILE`` and/or flags (flags override the file)."""
    from .boxes import BoxParams
    from .config import DataConfig, InputConfig, ModelConfig, RunConfig

    cfg = RunConfig.from_file(args.config) if args.config else RunConfig()
    data = cfg.data.model_dump()
    if args.dior:
        data.update(kind="dior", root=args.dior)
    elif args.coco:
        data.update(kind="coco", root=args.coco, images=args.images)
    elif args.samples:
        data.update(kind="samples", root=None)
    for k in ("split", "limit"):
        if getattr(args, k) is not None:
            data[k] = getattr(args, k)
    model = cfg.model.model_dump()
    if args.arch:
        model.update(arch=args.arch)
    if args.checkpoint:
        model.update(checkpoint=args.checkpoint)
    if args.quickgelu:
        model.update(quickgelu=True)
    inp = cfg.input.model_dump()
    for k in ("size", "window", "stride"):
        if getattr(args, k) is not None:
            inp[k] = getattr(args, k)
    boxes = cfg.boxes.model_dump()
    for flag, field in (("percentile", "percentile"), ("morph_kernel", "morph_kernel"), ("score", "score"),
                        ("min_area", "min_area"), ("nms", "nms_iou"), ("box_resolution", "box_resolution")):
        if getattr(args, flag) is not None:
            boxes[field] = getattr(args, flag)
    if args.class_prob_weight:
        boxes["class_prob_weight"] = True
    if args.refine is not None:
        boxes["refine"] = args.refine
    fields = cfg.model_dump()
    fields.update(data=DataConfig(**data), model=ModelConfig(**model), input=InputConfig(**inp),
                  boxes=BoxParams(**boxes))
    if args.methods:
        fields["methods"] = _method_list(args.methods)
    if args.ious:
        fields["iou_thresholds"] = tuple(float(t) for t in args.ious.split(","))
    if args.depth is not None:
        fields["surgery_depth"] = args.depth
    if args.figures is not None:
        fields["figure_samples"] = args.figures
    return RunConfig(**fields)


def _cmd_evaluate(args) -> int:
    from pydantic import ValidationError

    from .report import write_evaluation
    from .runs import Run
    from .store import RunStore, default_store

    try:
        cfg = config_from_args(args)
    except ValidationError as exc:
        raise SurgeryError(f"invalid run configuration: {exc}") from None
    store = RunStore(args.store) if args.store else default_store()
    run = Run.open(cfg, store, device=args.device, workers=args.workers, batch_size=args.batch_size,
                   show_bar=True)
    out = Path(args.out) if args.out else Path("surgery_eval") / cfg.run_hash
    paths = write_evaluation(run, out)
    s = run.summary()
    print(f"run {cfg.run_hash}: {s['images_with_grids']}/{s['images']} images with heatmaps "
          f"({s['computed_now']} computed now, {s['reused']} from the store {store.root})")
    if s["model_note"]:
        print(f"WARNING: {s['model_note']}")
    for sk in s["skipped_images"]:
        print(f"skipped image {sk['image_id']}: {sk['reason']}")
    for sk in s["skipped_annotations"]:
        print(f"skipped annotation {sk['file']}: {sk['reason']}")
    tables = run.ap_tables()["tables"]
    interp = cfg.interps[0]
    print(f"mAP ({interp}, percentile {cfg.boxes.percentile:g}) per IoU:")
    for m in cfg.methods:
        for proto in cfg.protocols:
            vals = tables[m][proto][interp]["per_iou"]["mAP_per_iou"]
            print(f"  {m:<9} {proto:<8} " + "  ".join(f"@{k}={'n/a' if v is None else f'{v:.4f}'}"
                                                      for k, v in vals.items()))
    q = run.quality()["methods"]
    print("pointing game: " + ", ".join(f"{m} {q[m]['pointing_game']['overall']:.3f}" for m in cfg.methods
                                        if q[m]['pointing_game']['overall'] is not None))
    print(f"wrote {len(paths)} reports and figures to {out}/")
    return 0


def _cmd_report(args) -> int:
    from pydantic import ValidationError

    from .runs import Run
    from .sharing import default_samples, write_report
    from .store import RunStore, default_store

    try:
        cfg = config_from_args(args)
    except ValidationError as exc:
        raise SurgeryError(f"invalid run configuration: {exc}") from None
    if args.samples_count < 0:
        raise SurgeryError("--samples-count must be 0 or more")
    store = RunStore(args.store) if args.store else default_store()
    run = Run.open(cfg, store, device=args.device, workers=args.workers, batch_size=args.batch_size,
                   show_bar=True)
    out = Path(args.out) if args.out else Path(f"surgery_report_{cfg.run_hash}.html")
    samples = default_samples(run, args.samples_count) if args.samples_count else []
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


def _add_run_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--config", help="run configuration JSON (flags override it)")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--dior", help="DIOR root (default: the demo scenes)")
    src.add_argument("--coco", help="COCO annotation JSON")
    src.add_argument("--samples", action="store_true", help="the five real DIOR pairs shipped with the project")
    e.add_argument("--images", help="image folder for --coco")
    e.add_argument("--split", help="train, val, test, trainval or all")
    e.add_argument("--limit", type=int, help="first N images of the split")
    e.add_argument("--arch", help="open_clip architecture (default: the demo model)")
    e.add_argument("--checkpoint", help="local checkpoint (state dict)")
    e.add_argument("--quickgelu", action="store_true")
    e.add_argument("--methods", help="comma-separated heatmap methods (default: all ten; see 'surgery methods')")
    e.add_argument("--depth", type=int, help="surgery depth (default 6)")
    e.add_argument("--size", type=int, help="input size in px")
    e.add_argument("--window", type=int, help="sliding-window size in px")
    e.add_argument("--stride", type=int, help="sliding-window stride in px")
    e.add_argument("--percentile", type=float, help="heatmap threshold percentile (default 90)")
    e.add_argument("--morph-kernel", dest="morph_kernel", type=int)
    e.add_argument("--score", choices=["mean", "max"])
    e.add_argument("--class-prob-weight", dest="class_prob_weight", action="store_true")
    e.add_argument("--min-area", dest="min_area", type=float)
    e.add_argument("--nms", type=float, help="NMS IoU (default off)")
    e.add_argument("--box-resolution", dest="box_resolution", type=int)
    e.add_argument("--refine", choices=["none", "pamr"],
                   help="refine maps before the threshold: pamr = NACLIP's PAMR, 10 iterations, dilations 8, 16")
    e.add_argument("--ious", help="comma-separated IoU thresholds (default 0.05,0.1,0.15,0.2,0.3,0.5)")
    e.add_argument("--figures", type=int, help="three-column PNGs per method (default 10)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="surgery", description="CLIP Surgery heatmaps, boxes and metrics.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dataset", help="read a dataset's annotations and print counts and quirks")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--dior", help="DIOR root (release layout)")
    src.add_argument("--coco", help="COCO-format annotation JSON")
    d.add_argument("--images", help="image folder for --coco")
    d.add_argument("--split", default="test", help="train, val, test, trainval or all (DIOR)")
    d.add_argument("--json", action="store_true", help="print a JSON object")
    d.set_defaults(func=_cmd_dataset)

    h = sub.add_parser("heatmaps", help="the raw heatmap grids of one image (every method by default), as .npz")
    h.add_argument("--arch", required=True, help="open_clip architecture, e.g. ViT-B-32")
    h.add_argument("--checkpoint", help="local checkpoint file (state dict)")
    h.add_argument("--quickgelu", action="store_true", help="QuickGELU activations (OpenAI CLIP, RemoteCLIP)")
    h.add_argument("--image", required=True)
    h.add_argument("--classes", required=True, help="comma-separated class names")
    h.add_argument("--out", required=True, help="output .npz")
    h.add_argument("--size", type=int, help="input size in px (default: the model's own)")
    h.add_argument("--window", type=int, help="sliding-window size in px (default: none)")
    h.add_argument("--stride", type=int, help="sliding-window stride in px (default: the window)")
    h.add_argument("--depth", type=int, default=6, help="surgery depth: final blocks of the v-v and GEM paths")
    h.add_argument("--methods", help="comma-separated heatmap methods (default: all ten; see 'surgery methods')")
    h.add_argument("--query", action="store_true",
                   help="single-text feature surgery per name (free-text queries) instead of class-set mode")
    h.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    h.set_defaults(func=_cmd_heatmaps)

    e = sub.add_parser("evaluate", help="heatmaps, boxes, AP, sweeps, quality and figures for a run")
    _add_run_arguments(e)
    e.add_argument("--out", help="output folder (default: ./surgery_eval/<run hash>)")
    e.add_argument("--store", help="run store folder (default: $SURGERY_STORE or ~/.cache/surgery/store)")
    e.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    e.add_argument("--workers", type=int, help="image-decoding worker processes")
    e.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("report", help="one self-contained HTML report of a run (and optionally a .zip of it)")
    _add_run_arguments(r)
    r.add_argument("--out", help="output HTML (default: ./surgery_report_<run hash>.html)")
    r.add_argument("--zip", help="also write a .zip: numbers as JSON and CSV, figures as PNG, the HTML")
    r.add_argument("--samples-count", dest="samples_count", type=int, default=4,
                   help="images drawn with every method of the run side by side (default 4; 0 = none)")
    r.add_argument("--include-paths", dest="include_paths", action="store_true",
                   help="keep absolute paths (dataset root, checkpoint) instead of their base names")
    r.add_argument("--store", help="run store folder (default: $SURGERY_STORE or ~/.cache/surgery/store)")
    r.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    r.add_argument("--workers", type=int, help="image-decoding worker processes")
    r.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    r.set_defaults(func=_cmd_report)

    ms = sub.add_parser("methods", help="list the heatmap methods: what each does and its source")
    ms.set_defaults(func=_cmd_methods)

    from .scoring import add_score_arguments, run_score

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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SurgeryError as exc:
        print(f"surgery {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
