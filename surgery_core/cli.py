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
    out = compute_heatmaps(loaded, x, classes, DEFAULT_METHODS, depth=args.depth, window=window,
                           stride=args.stride, query_mode=args.query)
    arrays = {name: g[0].astype(np.float32) for name, g in out.grids.items()}
    np.savez(args.out, classes=np.asarray(classes), class_prob=out.probs[0].astype(np.float32), **arrays)
    k, gh, gw = arrays["standard"].shape
    print(f"wrote {args.out}: {len(arrays)} methods x [{k}, {gh}, {gw}] raw similarity grids "
          f"({args.arch}, input {size}px, surgery depth {args.depth})")
    return 0


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

    h = sub.add_parser("heatmaps", help="the four raw heatmap grids of one image, as .npz")
    h.add_argument("--arch", required=True, help="open_clip architecture, e.g. ViT-B-32")
    h.add_argument("--checkpoint", help="local checkpoint file (state dict)")
    h.add_argument("--quickgelu", action="store_true", help="QuickGELU activations (OpenAI CLIP, RemoteCLIP)")
    h.add_argument("--image", required=True)
    h.add_argument("--classes", required=True, help="comma-separated class names")
    h.add_argument("--out", required=True, help="output .npz")
    h.add_argument("--size", type=int, help="input size in px (default: the model's own)")
    h.add_argument("--window", type=int, help="sliding-window size in px (default: none)")
    h.add_argument("--stride", type=int, help="sliding-window stride in px (default: the window)")
    h.add_argument("--depth", type=int, default=6, help="surgery depth: final blocks with the v-v path")
    h.add_argument("--query", action="store_true",
                   help="single-text feature surgery per name (free-text queries) instead of class-set mode")
    h.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    h.set_defaults(func=_cmd_heatmaps)

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
