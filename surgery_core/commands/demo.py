"""``surgery demo``: the embedded demo world (synthetic scenes in DIOR's layout, and the small CLIP trained on them)."""

from __future__ import annotations

import json
from pathlib import Path

from surgery_core.cli import at_least


def _cmd_demo_generate(args) -> int:
    from surgery_core.demo.scenes import generate_dataset

    from surgery_core.errors import InputError

    try:
        summary = generate_dataset(args.out, args.seed, args.count, args.size, overwrite=args.overwrite)
    except FileExistsError:
        raise InputError(args.out, "exists and is not empty; --overwrite replaces it") from None
    print(json.dumps({k: summary[k] for k in ("out", "seed", "count", "size", "splits")}, default=str))
    return 0


def _cmd_demo_train(args) -> int:
    from surgery_core.demo.model import WEIGHTS_DIR
    from surgery_core.demo.train import train

    from surgery_core.cli import _device

    args.device = _device(args)  # checked against this machine before anything is rendered
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


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="the embedded demo world: synthetic scenes and a small CLIP")
    dsub = demo.add_subparsers(dest="demo_command", required=True)
    g = dsub.add_parser("generate", help="write synthetic aerial scenes in DIOR's release layout")
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=at_least(0), required=True)
    g.add_argument("--count", type=at_least(1), required=True)
    g.add_argument("--size", type=at_least(64), default=224, help="scene side in px")
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=_cmd_demo_generate)
    t = dsub.add_parser("train", help="train the demo CLIP on scene captions (CPU, deterministic per seed)")
    t.add_argument("--out", help="output folder (default: the shipped weights folder)")
    for name, kind in (("seed", at_least(0)), ("scenes", at_least(1)), ("steps", at_least(1)),
                       ("batch", at_least(1)), ("lr", at_least(0, float, strict=True))):
        t.add_argument(f"--{name}", type=kind, help="default: the shipped recipe (surgery_core.demo.train.train)")
    t.add_argument("--threads", type=at_least(1), default=2)
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=_cmd_demo_train)
    c = dsub.add_parser("card", help="evaluate the shipped demo weights and rewrite their model card")
    c.set_defaults(func=_cmd_demo_card)
