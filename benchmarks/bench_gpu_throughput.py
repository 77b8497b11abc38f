"""Throughput, side by side in one run: decoding, vanilla ``encode_image``, the four-heatmap pass, end to end.

On synthetic 800x800 JPEGs (DIOR's size, ~200 KB each, written once into a temporary folder):

* decode alone: the CPU path (OpenCV in DataLoader workers: decode, squash, normalise) with 1 worker and with
  every core, and the GPU path (``device_images``: nvJPEG batched, squash and normalise on the card);
* vanilla ``encode_image``, the four-heatmap pass (dual path + 4 similarity grids for the 20 DIOR classes +
  class probabilities, to host) on resident tensors, and their ratio (target >= 0.95 on an H100/H200 at
  ViT-B/32, 224 px, bf16);
* end to end: decode, four heatmaps, grids to host (target >= 5,000 images/s on an H100/H200 at ViT-B/32);
* ``--cpu-procs``: ``surgery evaluate`` on the demo split by 1 process and by 2 torchrun ranks (gloo, CPU),
  wall time of the whole command from a fresh store each.

Random weights (speed does not depend on them); bf16 autocast on GPU, fp32 on CPU. Without a GPU the GPU
figures are skipped and say so.

    python benchmarks/bench_gpu_throughput.py [--archs ViT-B-32,ViT-B-16,ViT-L-14] [--batch 256] [--images 2048]
    python benchmarks/bench_gpu_throughput.py --cpu-procs [--limit 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from surgery_core.data.classes import DIOR_CLASSES  # noqa: E402
from surgery_core.model.heatmaps import compute_heatmaps  # noqa: E402
from surgery_core.model.loading import autocast_dtype, load_model  # noqa: E402
from surgery_core.model.text import ensemble_text_features  # noqa: E402
from surgery_core.run.device_images import DeviceImageBatches  # noqa: E402
from surgery_core.run.engine import _collate, _ImageSet  # noqa: E402


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


def per_second(count: int, fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return count / (time.perf_counter() - t)


def decode_cpu(paths, size, mean, std, batch, workers) -> int:
    loader = torch.utils.data.DataLoader(_ImageSet(paths, size, mean, std), batch_size=batch, num_workers=workers,
                                         collate_fn=_collate)
    return sum(len(local) for local, _, _ in loader)


def decode_device(paths, size, mean, std, batch, device) -> int:
    return sum(len(local) for local, _, _ in DeviceImageBatches(paths, size, mean, std, batch, device))


def rate_resident(fn, images, iters, device) -> float:
    for _ in range(2):
        fn(images)
    return per_second(iters * images.shape[0], lambda: [fn(images) for _ in range(iters)], device)


def throughput(args, device: torch.device, paths: list[Path]) -> dict:
    dtype = autocast_dtype(device)
    out = {}
    for arch in args.archs.split(","):
        loaded = load_model(arch, device=device, random_weights=True)
        model, size = loaded.model, loaded.image_size
        ensemble_text_features(loaded, DIOR_CLASSES)  # once per (model, class list), as in a run
        res = {}
        cores = os.cpu_count() or 1
        for workers in sorted({1, cores}):
            res[f"decode_cpu_{workers}w"] = per_second(
                len(paths), lambda: decode_cpu(paths, size, loaded.mean, loaded.std, args.batch, workers), device)
        if device.type == "cuda":
            res["decode_gpu"] = per_second(
                len(paths), lambda: decode_device(paths, size, loaded.mean, loaded.std, args.batch, device), device)
        images = torch.randn(args.batch, 3, size, size, device=device)

        @torch.no_grad()
        def vanilla(x):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                return model.encode_image(x)

        def four(x):
            return compute_heatmaps(loaded, x, DIOR_CLASSES)

        iters = args.iters if "L-14" not in arch else max(2, args.iters // 4)
        res["encode_image"] = rate_resident(vanilla, images, iters, device)
        res["four_heatmaps"] = rate_resident(four, images, iters, device)
        res["ratio_four_over_vanilla"] = res["four_heatmaps"] / res["encode_image"]

        def end_to_end():
            if device.type == "cuda":
                batches = DeviceImageBatches(paths, size, loaded.mean, loaded.std, args.batch, device)
            else:
                batches = torch.utils.data.DataLoader(_ImageSet(paths, size, loaded.mean, loaded.std),
                                                      batch_size=args.batch, num_workers=cores, collate_fn=_collate)
            for _, batch, _ in batches:
                compute_heatmaps(loaded, batch, DIOR_CLASSES)  # grids reach the host inside

        res["end_to_end"] = per_second(len(paths), end_to_end, device)
        out[f"{arch}@{size}"] = {k: round(v, 3 if k.startswith("ratio") else 1) for k, v in res.items()}
        r = out[f"{arch}@{size}"]
        print(f"{arch}@{size}: " + " | ".join(f"{k} {v:,}" for k, v in r.items()), flush=True)
        if device.type == "cuda":
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
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="ViT-B-32,ViT-B-16,ViT-L-14")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--images", type=int, default=2048, help="synthetic 800x800 JPEGs for decode and end to end")
    ap.add_argument("--cpu-procs", action="store_true", help="only the 1 vs 2 process CPU figure")
    ap.add_argument("--limit", type=int, default=300, help="demo images for --cpu-procs")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.cpu_procs:
        out = {"cpu_processes": cpu_processes(args.limit), "cores": os.cpu_count()}
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        dtype = autocast_dtype(device)
        print(f"{name}, torch {torch.__version__}, autocast {dtype}, batch {args.batch}, {args.images} JPEGs 800x800")
        if device.type != "cuda":
            print("no CUDA GPU: the GPU decode figure is skipped; the rest runs on the CPU in fp32")
        with tempfile.TemporaryDirectory(prefix="bench-jpegs-") as tmp:
            paths = synthetic_jpegs(Path(tmp), args.images)
            kb = sum(p.stat().st_size for p in paths) / len(paths) / 1e3
            print(f"JPEGs: {kb:.0f} KB on average")
            out = {"device": name, "torch": torch.__version__, "dtype": str(dtype), "batch": args.batch,
                   "images": args.images, "jpeg_kb": round(kb), "results": throughput(args, device, paths)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
