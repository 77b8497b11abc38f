"""Cost of the method registry's one pass: all ten methods vs the seed's four vs vanilla ``encode_image``.

Times the image tower only (``tower_forward`` with the paths the methods need, then scoring against random
text features), on the same machine, in one process, interleaved over repetitions so that a busy machine
slows the three alike; prints the median per pass and the ratios. Target (issue 13): all ten <= 1.5x the
seed's four.

    python benchmarks/bench_methods.py [--arch ViT-B-16] [--batch 8] [--size 224] [--reps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from surgery_core.model.forward import tower_forward
from surgery_core.model.heatmaps import similarity_grids
from surgery_core.model.loading import autocast_dtype, load_model
from surgery_core.model.methods import DEFAULT_METHODS, SEED_METHODS, paths_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=None, help="input px (default: the model's own)")
    ap.add_argument("--classes", type=int, default=20, help="text features (random) scored per pass")
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    loaded = load_model(args.arch, device=device, random_weights=True)  # random weights: the cost does not depend on them
    visual = loaded.model.visual
    size = args.size or loaded.image_size
    images = torch.randn(args.batch, 3, size, size, device=device)
    text = F.normalize(torch.randn(args.classes, loaded.model.text_projection.shape[1], device=device), dim=-1)
    dtype = autocast_dtype(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def vanilla():
        loaded.model.encode_image(images)

    def methods(names):
        def run():
            toks = tower_forward(visual, images, paths_for(names), args.depth)
            similarity_grids(toks, text, names)
        return run

    cases = {"encode_image": vanilla, f"seed four ({', '.join(SEED_METHODS)})": methods(SEED_METHODS),
             f"all ten ({len(DEFAULT_METHODS)})": methods(DEFAULT_METHODS)}
    times = {k: [] for k in cases}
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for fn in cases.values():  # warm-up
            fn()
        sync()
        for _ in range(args.reps):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    print(f"{args.arch}, batch {args.batch}, {size} px, depth {args.depth}, {args.classes} classes, "
          f"{dev}, {'fp32' if dtype is None else dtype}; median of {args.reps} interleaved repetitions")
    base = med["encode_image"]
    four = med[next(k for k in med if k.startswith("seed four"))]
    for k, v in med.items():
        print(f"  {k:<46} {v * 1000:9.1f} ms/pass  {v / args.batch * 1000:8.1f} ms/img  "
              f"x{v / base:4.2f} of encode_image  x{v / four:4.2f} of the seed's four  "
              f"(min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f} ms)")
    ten = med[next(k for k in med if k.startswith("all ten"))]
    print(f"all ten / seed four = {ten / four:.2f} wall time (target <= 1.5): {'met' if ten / four <= 1.5 else 'NOT met'}")
    from surgery_core.model.heatmaps import pass_flops

    f0, f4, f10 = (pass_flops(visual, ms, size, args.depth) for ms in (None, SEED_METHODS, DEFAULT_METHODS))
    print(f"matrix-product FLOPs per image: encode_image {f0 / 1e9:.2f} G, seed four x{f4 / f0:.3f}, "
          f"all ten x{f10 / f0:.3f}; all ten / seed four = {f10 / f4:.2f}")


if __name__ == "__main__":
    main()
