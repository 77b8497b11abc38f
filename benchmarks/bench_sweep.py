"""Box extraction + threshold sweep + mAP at DIOR-test scale, on this machine's CPUs.

Real annotations (the 11,738 DIOR test files from ../shared/data/dior), synthetic heatmaps of DIOR geometry:
per image a 25x25 grid per class (ViT-B/32 at 800 px), smooth noise plus a bump on every ground-truth box,
all 20 classes, 10 percentiles x 6 IoU thresholds, VOC07. Prints wall times:

- cutting boxes for the "present" protocol (annotated classes per image) at 10 percentiles;
- the 60 VOC07 (percentile, IoU) cells of the sweep from the cached boxes (matching once per percentile,
  as ``surgery_core.run.evaluation.sweep_table`` does);
- recomputing one cell (what a slider drag in the dashboard costs): at a percentile not matched yet
  (matching + AP) and at another IoU of an already matched percentile (AP only; ``Run.ap`` caches matches);
- optionally (--open) the "open" protocol: every class on every image.

Targets (issue 3): whole sweep < 60 s; one cell < 1 s.

    python benchmarks/bench_sweep.py [--images N] [--workers 2] [--open]
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from surgery_core.eval.ap import evaluate, voc_match  # noqa: E402
from surgery_core.eval.boxes import DEFAULT_SWEEP_PERCENTILES, BoxParams, sweep_detections  # noqa: E402
from surgery_core.run.config import SEED_IOUS  # noqa: E402
from surgery_core.data.datasets import load_dior  # noqa: E402
from surgery_core.run.evaluation import present_pairs  # noqa: E402

TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "dior" / "DIOR-annotations-hbb.tar.gz"


def synthetic_grids(ds, grid: int, rng) -> np.ndarray:
    """[N, 20, grid, grid] float32: smooth noise, plus a Gaussian bump on each GT box of the class."""
    n, k = len(ds.images), len(ds.classes)
    g = rng.normal(0, 0.05, (n, k, grid, grid)).astype(np.float32)
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    for i, rec in enumerate(ds.images):
        s = grid / rec.width
        for (x1, y1, x2, y2), c in zip(rec.xyxy, rec.labels):
            cx, cy = (x1 + x2) / 2 * s, (y1 + y2) / 2 * s
            sx, sy = max((x2 - x1) * s / 2, 0.5), max((y2 - y1) * s / 2, 0.5)
            g[i, c] += 0.3 * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
    return g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=None, help="first N test images (default: all 11,738)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grid", type=int, default=25)
    ap.add_argument("--open", action="store_true", help="also time the open protocol (all 20 classes)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with tarfile.open(TARBALL) as tar:
            tar.extractall(tmp, filter="data")
        ds = load_dior(Path(tmp) / "DIOR", "test", limit=args.images)
        print(f"annotations: {len(ds.images)} images, {len(ds.ground_truth())} boxes, "
              f"read in {time.perf_counter() - t:.1f} s")
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    grids = synthetic_grids(ds, args.grid, rng)
    print(f"synthetic grids {grids.shape} in {time.perf_counter() - t:.1f} s")
    sizes = np.asarray([(r.width, r.height) for r in ds.images])
    rows = np.arange(len(ds.images))
    pr, pc = present_pairs(ds, rows)
    gt = ds.ground_truth()
    params = BoxParams()
    protocols = [("present", dict(pair_image=pr, pair_class=pc))] + ([("open", {})] if args.open else [])
    for name, pairs in protocols:
        n_pairs = len(pr) if pairs else len(ds.images) * len(ds.classes)
        t = time.perf_counter()
        dets = sweep_detections(grids, sizes, params, DEFAULT_SWEEP_PERCENTILES, workers=args.workers, **pairs)
        t_boxes = time.perf_counter() - t
        t = time.perf_counter()
        best = (-1.0, None)
        for p in DEFAULT_SWEEP_PERCENTILES:
            res = evaluate(gt, dets[p], len(ds.classes), SEED_IOUS, "voc07", match=voc_match(gt, dets[p]))
            for iou, m in zip(SEED_IOUS, res.map_per_iou):
                if m > best[0]:
                    best = (float(m), (p, iou))
        t_sweep = time.perf_counter() - t
        t = time.perf_counter()
        matched = voc_match(gt, dets[75.0])
        evaluate(gt, dets[75.0], len(ds.classes), 0.1, "voc07", match=matched)
        t_cell = time.perf_counter() - t
        t = time.perf_counter()
        evaluate(gt, dets[75.0], len(ds.classes), 0.3, "voc", match=matched)
        t_cell_iou = time.perf_counter() - t
        n_det = sum(len(d) for d in dets.values())
        print(f"[{name}] {n_pairs:,} (image, class) pairs x {len(DEFAULT_SWEEP_PERCENTILES)} percentiles -> "
              f"{n_det:,} boxes: cut in {t_boxes:.1f} s ({args.workers} workers, "
              f"{t_boxes / n_pairs * 1e3:.2f} ms per pair); 60-cell VOC07 sweep {t_sweep:.1f} s; "
              f"whole sweep {t_boxes + t_sweep:.1f} s (target < 60 s); one cell {t_cell * 1e3:.0f} ms at a new "
              f"percentile, {t_cell_iou * 1e3:.0f} ms at a new IoU (target < 1000 ms); best mAP {best[0]:.4f} at percentile {best[1][0]:g}, IoU {best[1][1]:g}")


if __name__ == "__main__":
    main()
