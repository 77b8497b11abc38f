"""GPU throughput, side by side in one run on the card: vanilla ``encode_image``, the seed's four methods, every
registered method, and end to end from JPEG files (issue #27 item 4).

Per architecture, on resident batches of random normalised images at the model's own size:

* ``vanilla``: open_clip's ``encode_image`` (the tower, nothing else);
* ``four``: the seed's four heatmaps (``methods.SEED_METHODS``: one dual-path pass, 20 DIOR classes, grids and
  class probabilities to the host, as a run computes them);
* ``all``: every registered method (``methods.DEFAULT_METHODS``), the same way;

and end to end from synthetic DIOR-sized JPEGs (800x800, ~200 KB) on disk: read, decode, squash, normalise, then
the four (``e2e_four``) or all methods (``e2e_all``), grids to the host. On CUDA the JPEGs are decoded by nvJPEG
(``torchvision.io.decode_jpeg`` on the device, :mod:`surgery_core.run.device_images`, as ``surgery evaluate``
does on a GPU); on the CPU by OpenCV in DataLoader workers. Decoding alone is timed too.

Targets, ViT-B/32 at 224 px on one H100/H200 (bf16 autocast, batch 256): ``four / vanilla >= 0.95`` and
``e2e_four >= 5,000 images/s``. The script says whether they are met only on a CUDA device; on a CPU it runs (a
smoke run that the figures are computed and printed) and says it is not the target hardware.

Cases are interleaved over ``--reps`` repetitions (a busy machine slows each alike); each figure is the median.
Random weights (speed does not depend on them).

    .venv/bin/python benchmarks/bench_gpu_throughput.py [--archs ViT-B-32,ViT-B-16,ViT-L-14] [--batch 256]
        [--images 2048] [--reps 5] [--json FILE]
    .venv/bin/python benchmarks/bench_gpu_throughput.py --device cpu --archs ViT-B-32 --images 16 --batch 8 --reps 1
    .venv/bin/python benchmarks/bench_gpu_throughput.py --cpu-procs [--limit 300]

``--cpu-procs``: ``surgery evaluate`` on the demo split by 1 process and by 2 torchrun ranks (gloo, CPU), wall
time of the whole command from a fresh store each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _machine import load_line, machine_line  # noqa: E402  (benchmarks/ is sys.path[0] when this file runs)

from surgery_core.data.classes import DIOR_CLASSES  # noqa: E402
from surgery_core.model.heatmaps import compute_heatmaps  # noqa: E402
from surgery_core.model.loading import autocast_dtype, load_model  # noqa: E402
from surgery_core.model.methods import DEFAULT_METHODS, SEED_METHODS  # noqa: E402
from surgery_core.model.text import ensemble_text_features  # noqa: E402
from surgery_core.run.device_images import DeviceImageBatches  # noqa: E402
from surgery_core.run.engine import _collate, _ImageSet  # noqa: E402

TARGET_RATIO = 0.95  # the four / vanilla, on the card
TARGET_E2E = 5000  # images/s, ViT-B/32 at 224 px, nvJPEG decoding
TARGET_ARCH = "ViT-B-32"


def synthetic_jpegs(folder: Path, count: int, side: int = 800) -> list[Path]:
    """``count`` distinct DIOR-sized JPEGs (smooth scene + noise, quality 85: ~200 KB like DIOR's)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([(xx * 0.3 + yy * 0.1 + 7 * i) % 255, (yy * 0.3 + 3 * i) % 255, ((xx + yy) * 0.2) % 255], -1)
        img = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
        p = folder / f"{i:05d}.jpg"
        Image.fromarray(img).save(p, quality=85)
        paths.append(p)
    return paths


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def batches(paths, loaded, size, batch, device):
    """The run's own image path: nvJPEG batches on CUDA, OpenCV in DataLoader workers on the CPU."""
    if device.type == "cuda":
        return DeviceImageBatches(paths, size, loaded.mean, loaded.std, batch, device)
    return torch.utils.data.DataLoader(_ImageSet(paths, size, loaded.mean, loaded.std), batch_size=batch,
                                       num_workers=min(4, os.cpu_count() or 1), collate_fn=_collate)


def cases_for(loaded, device, images, paths, batch, iters) -> dict:
    """name -> (images per call, callable)."""
    dtype = autocast_dtype(device)
    model, size = loaded.model, loaded.image_size

    @torch.no_grad()
    def vanilla():
        for _ in range(iters):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                model.encode_image(images)

    def resident(methods):
        return lambda: [compute_heatmaps(loaded, images, DIOR_CLASSES, methods) for _ in range(iters)]

    def decode():
        for _ in batches(paths, loaded, size, batch, device):
            pass

    def e2e(methods):
        def run():
            for _, x, _ in batches(paths, loaded, size, batch, device):
                compute_heatmaps(loaded, x, DIOR_CLASSES, methods)  # grids and probabilities reach the host inside
        return run

    n = iters * images.shape[0]
    return {"vanilla": (n, vanilla), "four": (n, resident(SEED_METHODS)), "all": (n, resident(DEFAULT_METHODS)),
            "decode": (len(paths), decode), "e2e_four": (len(paths), e2e(SEED_METHODS)),
            "e2e_all": (len(paths), e2e(DEFAULT_METHODS))}


def throughput(args, device: torch.device, paths: list[Path]) -> dict:
    out = {}
    for arch in args.archs.split(","):
        loaded = load_model(arch, device=device, random_weights=True)
        size = loaded.image_size
        ensemble_text_features(loaded, DIOR_CLASSES)  # once per (model, class list), as in a run
        images = torch.randn(args.batch, 3, size, size, device=device)
        iters = args.iters if "L-14" not in arch else max(1, args.iters // 4)
        cases = cases_for(loaded, device, images, paths, args.batch, iters)
        for _, fn in cases.values():  # warm-up: kernels chosen, workers started, allocator settled
            fn()
        seconds = {k: [] for k in cases}
        for _ in range(args.reps):
            for k, (_, fn) in cases.items():
                seconds[k].append(timed(fn, device))
        rate = {k: cases[k][0] / statistics.median(s) for k, s in seconds.items()}
        res = {f"{k}_per_s": round(v, 1) for k, v in rate.items()}
        res.update(four_over_vanilla=round(rate["four"] / rate["vanilla"], 3),
                   all_over_vanilla=round(rate["all"] / rate["vanilla"], 3),
                   all_over_four=round(rate["all"] / rate["four"], 3))
        out[f"{arch}@{size}"] = res
        print(f"\n{arch} @ {size} px, batch {args.batch}, median of {args.reps}, images/s:")
        print(f"  {'vanilla encode_image':<44}{rate['vanilla']:>12,.1f}")
        print(f"  {'the four (seed methods)':<44}{rate['four']:>12,.1f}   {res['four_over_vanilla']:.3f}x vanilla")
        print(f"  {f'all {len(DEFAULT_METHODS)} methods':<44}{rate['all']:>12,.1f}   "
              f"{res['all_over_vanilla']:.3f}x vanilla, {res['all_over_four']:.3f}x the four")
        decoder = "nvJPEG on the device" if device.type == "cuda" else "OpenCV, DataLoader workers"
        print(f"  {f'decode alone ({decoder})':<44}{rate['decode']:>12,.1f}")
        print(f"  {'end to end, the four':<44}{rate['e2e_four']:>12,.1f}")
        print(f"  {'end to end, all methods':<44}{rate['e2e_all']:>12,.1f}", flush=True)
        if arch == TARGET_ARCH and size == 224:
            if device.type == "cuda":
                ok_r, ok_e = res["four_over_vanilla"] >= TARGET_RATIO, rate["e2e_four"] >= TARGET_E2E
                print(f"  targets: the four >= {TARGET_RATIO}x vanilla: {'met' if ok_r else 'NOT met'}; end to end "
                      f">= {TARGET_E2E:,} images/s: {'met' if ok_e else 'NOT met'}")
            else:
                print("  targets (the four >= 0.95x vanilla, end to end >= 5,000 images/s) are for an H100/H200: "
                      "not judged on this CPU")
        if device.type == "cuda":
            del images
            torch.cuda.empty_cache()
    return out


def cpu_processes(limit: int) -> dict:
    """Wall time of ``surgery evaluate`` on the demo split: 1 process, then 2 torchrun ranks (fresh stores)."""
    res = {}
    with tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp:
        env = {**os.environ, "SURGERY_CACHE": os.environ.get("SURGERY_CACHE", str(Path(tmp) / "cache"))}
        args = ["evaluate", "--limit", str(limit), "--figures", "0", "--device", "cpu"]
        # first use generates the demo scenes: not part of either figure
        subprocess.run([sys.executable, "-m", "surgery_core", *args, "--limit", "1", "--store", f"{tmp}/warm",
                        "--out", f"{tmp}/warm-out"], env=env, check=True, capture_output=True)
        for procs in (1, 2):
            launcher = [sys.executable, "-m", "surgery_core"] if procs == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                "surgery_core"]
            t = time.perf_counter()
            subprocess.run(launcher + args + ["--store", f"{tmp}/store{procs}", "--out", f"{tmp}/out{procs}"],
                           env=env, check=True, capture_output=True)
            res[f"{procs}_process"] = round(time.perf_counter() - t, 1)
            print(f"surgery evaluate, demo split, {limit} images, {procs} process(es): {res[f'{procs}_process']} s",
                  flush=True)
        same = all((Path(tmp) / "out1" / n).read_bytes() == (Path(tmp) / "out2" / n).read_bytes()
                   for n in ("map_results.json", "sweep_results.json", "heatmap_quality_analysis.json"))
    res["speedup"] = round(res["1_process"] / res["2_process"], 2)
    res["identical_json"] = same
    print(f"2 ranks / 1 process speed-up {res['speedup']}x on {os.cpu_count()} cores; JSON identical: {same}")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="ViT-B-32,ViT-B-16,ViT-L-14")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10, help="resident batches per timed call")
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median)")
    ap.add_argument("--images", type=int, default=2048, help="synthetic 800x800 JPEGs for decode and end to end")
    ap.add_argument("--cpu-procs", action="store_true", help="only the 1 vs 2 process CPU figure")
    ap.add_argument("--limit", type=int, default=300, help="demo images for --cpu-procs")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is visible")
    print(machine_line(), flush=True)
    if args.cpu_procs:
        out = {"cpu_processes": cpu_processes(args.limit), "cores": os.cpu_count()}
    else:
        dtype = autocast_dtype(device)
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"device {where}, torch {torch.__version__}, autocast {dtype}, batch {args.batch}, "
              f"{args.images} JPEGs 800x800")
        if device.type != "cuda":
            print("NOT the target hardware: the GPU figures (nvJPEG decoding, bf16) need a CUDA device; this CPU "
                  "run (fp32, OpenCV decoding) only shows that every case runs")
        with tempfile.TemporaryDirectory(prefix="bench-jpegs-") as tmp:
            paths = synthetic_jpegs(Path(tmp), args.images)
            kb = sum(p.stat().st_size for p in paths) / len(paths) / 1e3
            print(f"JPEGs: {kb:.0f} KB on average")
            out = {"device": where, "torch": torch.__version__, "dtype": str(dtype), "batch": args.batch,
                   "images": args.images, "jpeg_kb": round(kb), "results": throughput(args, device, paths)}
    print(load_line())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
