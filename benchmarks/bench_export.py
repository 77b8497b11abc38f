"""Box export at DIOR test scale: writing and reading back the files of ``surgery export boxes`` for one cell.

Not a test: run it by hand and read the figures.

    .venv/bin/python benchmarks/bench_export.py [--images 11738] [--boxes-per-image 100]

A synthetic dataset of ``--images`` 800 x 800 images (DIOR's test split has 11,738) and one cell of
``--boxes-per-image`` boxes per image (the cap's maximum, ``max_dets`` 100: an ``open`` cell at its largest)
with fractional corners and scores, as heatmap boxes have. Printed: seconds and MB of the COCO results JSON
(build + dump), the CSV, the COCO ground truth, and of reading the JSON and the CSV back with ``surgery score``'s
readers; and whether the read-back corners and scores equal the written ones bit for bit (CSV) or to the last
bit of ``x + w`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surgery_core.data.classes import DIOR_CLASSES  # noqa: E402
from surgery_core.data.datasets import Dataset, ImageRecord, LoadReport  # noqa: E402
from surgery_core.data.detections import Detections  # noqa: E402
from surgery_core.data.exchange import CocoIds, coco_ground_truth, coco_results, detections_csv  # noqa: E402
from surgery_core.eval.scoring import read_detections  # noqa: E402


def synthetic(n_images: int, per_image: int, seed: int = 0) -> tuple[Dataset, Detections]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        k = int(rng.integers(1, 12))
        xy = rng.integers(0, 700, size=(k, 2)).astype(np.float64)
        wh = rng.integers(4, 100, size=(k, 2)).astype(np.float64)
        images.append(ImageRecord(f"{11726 + i:05d}", 800, 800, np.hstack([xy, xy + wh]),
                                  rng.integers(0, 20, size=k).astype(np.int64)))
    ds = Dataset("DIOR", "test", DIOR_CLASSES, images, LoadReport())
    n = n_images * per_image
    s = 800 / 224  # heatmap boxes: whole working pixels of a 224 px map, in 800 px image pixels
    a = rng.integers(0, 200, size=(n, 2)) * s
    b = a + rng.integers(1, 24, size=(n, 2)) * s
    det = Detections(np.hstack([a, b]), rng.random(n), rng.integers(0, 20, size=n),
                     np.repeat(np.arange(n_images), per_image))
    return ds, det


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{label:<44} {time.perf_counter() - t:7.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=11738)
    ap.add_argument("--boxes-per-image", type=int, default=100)
    args = ap.parse_args()
    ds, det = synthetic(args.images, args.boxes_per_image)
    ids = CocoIds.of(ds)
    print(f"{len(ds)} images, {len(det):,} boxes in one cell, {len(ds.ground_truth()):,} GT boxes")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        text = timed("COCO results: build + dump", lambda: json.dumps(coco_results(det, ids), separators=(",", ":")))
        (out / "r.json").write_text(text)
        csv_text = timed("CSV: write", lambda: detections_csv(det, ds, ds.classes))
        (out / "r.csv").write_text(csv_text)
        gt = timed("COCO ground truth: build + dump", lambda: json.dumps(
            coco_ground_truth(ds, np.arange(len(ds)), ds.classes, ids), separators=(",", ":")))
        print(f"sizes: results JSON {len(text) / 1e6:.1f} MB, CSV {len(csv_text) / 1e6:.1f} MB, "
              f"ground truth {len(gt) / 1e6:.1f} MB")
        back_csv = timed("CSV: read back (surgery score's reader)", lambda: read_detections(out / "r.csv", ds))
        back_json = timed("JSON: read back (surgery score's reader)", lambda: read_detections(out / "r.json", ds))
    same_csv = np.array_equal(back_csv.xyxy, det.xyxy) and np.array_equal(back_csv.score, det.score)
    ulp = np.abs(back_json.xyxy - det.xyxy) / np.spacing(np.maximum(np.abs(det.xyxy), 1.0))
    print(f"CSV read back bit for bit: {same_csv}; JSON corners within {ulp.max():.0f} ulp "
          f"({int((ulp > 0).sum()):,} of {ulp.size:,} differ in the last bit); scores equal: "
          f"{np.array_equal(back_json.score, det.score)}")


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
