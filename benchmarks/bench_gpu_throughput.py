"""GPU throughput of the four-heatmap pass as a ratio to plain ``encode_image`` on the same card.

Prints, per architecture: images/s of ``encode_image``, of the dual-path pass alone, and of the whole
four-heatmap computation (dual path + 4 similarity grids for 20 classes + class probabilities, copied to
host), and the ratios. Random weights (speed does not depend on them); bf16 autocast; batch 256.
Target (issue 3): ratio >= 0.8 for ViT-B/32 at 224 with bf16; DESIGN anchors aim for >= 0.95 on the pass.

    python benchmarks/bench_gpu_throughput.py [--archs ViT-B-32,ViT-B-16,ViT-L-14] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from surgery_core.classes import DIOR_CLASSES  # noqa: E402
from surgery_core.heatmaps import compute_heatmaps  # noqa: E402
from surgery_core.models import autocast_dtype, load_model  # noqa: E402
from surgery_core.prompts import ensemble_text_features  # noqa: E402
from surgery_core.surgery import surgery_forward  # noqa: E402


def rate(fn, images, iters):
    for _ in range(3):
        fn(images)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn(images)
    torch.cuda.synchronize()
    return iters * images.shape[0] / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="ViT-B-32,ViT-B-16,ViT-L-14")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    dev = torch.device("cuda")
    dtype = autocast_dtype(dev)
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "dtype": str(dtype),
           "batch": args.batch, "results": {}}
    print(f"{out['device']}, torch {torch.__version__}, autocast {dtype}, batch {args.batch}")
    for arch in args.archs.split(","):
        loaded = load_model(arch, device=dev, random_weights=True)
        model = loaded.model
        size = loaded.image_size
        images = torch.randn(args.batch, 3, size, size, device=dev)
        ensemble_text_features(loaded, DIOR_CLASSES)  # once per (model, class list), as in a run

        @torch.no_grad()
        def vanilla(x):
            with torch.autocast("cuda", dtype=dtype):
                return model.encode_image(x)

        @torch.no_grad()
        def dual(x):
            with torch.autocast("cuda", dtype=dtype):
                return surgery_forward(model.visual, x, 6)

        def four(x):
            return compute_heatmaps(loaded, x, DIOR_CLASSES)

        iters = args.iters if "L-14" not in arch else max(5, args.iters // 4)
        r_v, r_d, r_f = rate(vanilla, images, iters), rate(dual, images, iters), rate(four, images, iters)
        res = {"encode_image": round(r_v), "dual_path": round(r_d), "four_heatmaps": round(r_f),
               "ratio_dual": round(r_d / r_v, 3), "ratio_four": round(r_f / r_v, 3)}
        out["results"][f"{arch}@{size}"] = res
        print(f"{arch}@{size}: encode_image {r_v:,.0f} img/s | dual path {r_d:,.0f} ({r_d / r_v:.2f}x) | "
              f"four heatmaps to host {r_f:,.0f} ({r_f / r_v:.2f}x)", flush=True)
        del loaded, model, images
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
