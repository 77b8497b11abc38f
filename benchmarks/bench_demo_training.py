"""How long `surgery demo train` takes on this machine, from a short real run of the shipped recipe.

Renders ``--scenes`` scenes and trains ``--steps`` steps of the shipped recipe (batch 128, 224 px, the demo
architecture) exactly as ``surgery_core.demo.train.train`` does, then projects the full recipe (``train``'s
default scenes and steps) from the measured rendering time per scene and the step time after the first
``--skip`` steps (start-up). The projection is only as good as the machine is quiet: the load average is
printed before and after.

    .venv/bin/python benchmarks/bench_demo_training.py [--steps 60] [--scenes 1024]
    .venv/bin/python benchmarks/bench_demo_training.py --steps 8 --scenes 256 --skip 2   # the shortest check

``--scenes`` must be at least the batch (128): ``train`` draws each batch from the rendered scenes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--scenes", type=int, default=1024)
    ap.add_argument("--skip", type=int, default=5, help="first steps left out of the step time (start-up)")
    import inspect

    import torch

    from surgery_core.demo import train as T

    recipe = inspect.signature(T.train).parameters
    ap.add_argument("--full-scenes", type=int, default=recipe["scenes"].default)
    ap.add_argument("--full-steps", type=int, default=recipe["steps"].default)
    args = ap.parse_args()
    if args.scenes < recipe["batch"].default:
        ap.error(f"--scenes {args.scenes}: the recipe's batch is {recipe['batch'].default} scenes; give at least that")

    stamps: list[float] = []
    real_print = print

    def stamp(*a, **k):  # train() prints one line per logged step: time them
        stamps.append(time.perf_counter())
        real_print(*a, **k)

    load_before = os.getloadavg()
    T.print = stamp  # type: ignore[attr-defined]  (module-level name lookup in train())
    with tempfile.TemporaryDirectory() as tmp:
        log = T.train(Path(tmp), scenes=args.scenes, steps=args.steps, log_every=1)
    del T.print
    step_s = (stamps[-1] - stamps[args.skip]) / (len(stamps) - 1 - args.skip)
    render_per_scene = log["render_seconds"] / args.scenes
    full = render_per_scene * args.full_scenes + step_s * args.full_steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; load average "
          f"before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"rendering: {render_per_scene * 1e3:.1f} ms per scene ({log['render_seconds']:.1f} s for {args.scenes})")
    print(f"training: {step_s:.3f} s per step of batch {log['batch']} (steps {args.skip + 1}-{args.steps})")
    print(f"projected full recipe ({args.full_scenes:,} scenes, {args.full_steps:,} steps): {full / 60:.1f} min "
          f"(target < 30 min)")


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
