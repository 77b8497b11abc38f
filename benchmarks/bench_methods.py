"""Cost of the method registry's passes: every method vs the seed's four vs vanilla ``encode_image``, at several
input sizes, in one pass and in sliding windows, with the tower passes each needs.

Times the image side only (windows cut, ``encoder.tower_passes``: one tower pass per positional-embedding rule,
then scoring against random text features and merging the windows), on the same machine, in one process,
interleaved over repetitions so that a busy machine slows every case alike; prints the median per image and the
ratios side by side. Cases per input:

- ``encode_image``: the vanilla tower (open_clip's ``encode_image`` on the model's own size or on windows of it;
  off the model's size, the same blocks with the positional embedding resized once: ``encode_image`` itself
  refuses other sizes);
- the seed's four (one pass: they share CLIP Surgery's rule);
- every registered method with each official positional-embedding rule (``posembed official``);
- every registered method with one shared resize (``posembed shared``, one pass).

    .venv/bin/python benchmarks/bench_methods.py [--arch ViT-B-16] [--batch 4] [--inputs 224,448,448/224,800,800/224/192]
        [--reps 3] [--device cpu]

An input is ``SIZE`` (one pass) or ``SIZE/WINDOW[/STRIDE]`` (sliding windows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from surgery_core.model.encoder import Resolution, crops_of, merge_windows, resizes, token_needs, tower_passes
from surgery_core.model.forward import tower_forward
from surgery_core.model.heatmaps import pass_flops, similarity_grids
from surgery_core.model.loading import autocast_dtype, load_model
from surgery_core.model.methods import DEFAULT_METHODS, SEED_METHODS, pass_plan


def _input(text: str) -> tuple[int, int | None, int | None]:
    parts = [int(p) for p in text.split("/")]
    return parts[0], (parts[1] if len(parts) > 1 else None), (parts[2] if len(parts) > 2 else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--inputs", default="224,448,448/224,800,800/224/192",
                    help="comma-separated SIZE or SIZE/WINDOW[/STRIDE] in px")
    ap.add_argument("--classes", type=int, default=20, help="text features (random) scored per pass")
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--flops", action="store_true", help="also count matrix-product FLOPs per image (slow on CPU)")
    args = ap.parse_args()

    device = torch.device(args.device)
    loaded = load_model(args.arch, device=device, random_weights=True)  # the cost does not depend on the weights
    visual = loaded.model.visual
    patch = loaded.patch_size
    text = F.normalize(torch.randn(args.classes, loaded.model.text_projection.shape[1], device=device), dim=-1)
    dtype = autocast_dtype(device)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    print(f"{args.arch} (random weights), batch {args.batch}, depth {args.depth}, {args.classes} classes, {dev}, "
          f"{'fp32' if dtype is None else dtype}; median of {args.reps} interleaved repetitions per input")
    every = DEFAULT_METHODS

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for spec in args.inputs.split(","):
        size, window, stride = _input(spec)
        images = torch.randn(args.batch, 3, size, size, device=device)
        res = Resolution.of(size, window, stride, patch)
        window, stride, origins, crops = res.window, res.stride, res.origins(), crops_of(images, res)
        resize = resizes(visual, tuple(crops.shape[-2:]))

        def vanilla():
            if resize:
                tower_forward(visual, crops)
            else:
                loaded.model.encode_image(crops)

        def methods(names, posembed):
            def run():
                toks = tower_passes(visual, crops, token_needs(names, resize, posembed), args.depth, posembed)
                grids = similarity_grids(toks, text, names)
                if len(origins) > 1:
                    for g in grids.values():
                        merge_windows(g, origins, args.batch, (size // patch, size // patch), patch)
            return run

        cases = {"encode_image": (vanilla, 1),
                 "seed four": (methods(SEED_METHODS, "official"), len(pass_plan(SEED_METHODS, resize))),
                 f"all {len(every)}, official": (methods(every, "official"), len(pass_plan(every, resize))),
                 f"all {len(every)}, shared": (methods(every, "shared"), 1)}
        times = {k: [] for k in cases}
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for fn, _ in cases.values():  # warm-up
                fn()
            sync()
            for _ in range(args.reps):
                for name, (fn, _) in cases.items():
                    t0 = time.perf_counter()
                    fn()
                    sync()
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        how = (f"{len(origins)} windows of {window} px, stride {stride} px" if window else "one pass") + \
            (", positional embedding resized" if resize else ", the model's own grid")
        print(f"\n{size} px, {how}")
        base, four = med["encode_image"], med["seed four"]
        for k, v in med.items():
            print(f"  {k:<20} {cases[k][1]} tower pass{'es' if cases[k][1] > 1 else '  '} x {len(origins):>2} crops "
                  f"{v / args.batch * 1000:9.1f} ms/img  x{v / base:5.2f} of encode_image  x{v / four:5.2f} of the "
                  f"seed's four  (min {min(times[k]) / args.batch * 1000:.1f}, max "
                  f"{max(times[k]) / args.batch * 1000:.1f} ms/img)")
        if args.flops and window is None:
            f0, f4, fo, fs = (pass_flops(visual, ms, size, args.depth, pe) for ms, pe in
                              ((() if resize else None, "official"), (SEED_METHODS, "official"),
                               (every, "official"), (every, "shared")))
            print(f"  matrix-product FLOPs per image: encode_image {f0 / 1e9:.2f} G; seed four x{f4 / f0:.2f}, "
                  f"all official x{fo / f0:.2f}, all shared x{fs / f0:.2f}")


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
