"""Scoring speed on the full DIOR test split (11,738 images, 124,445 boxes) with ~122k synthetic detections.

Not a test: run it by hand and read the figures.

    .venv/bin/python benchmarks/bench_scoring.py [--tarball PATH] [--skip-pycocotools] [--repeat N]

Detections are the ground truth jittered (some dropped, some duplicated) plus uniform false positives,
with a fixed seed, so that matching has real work to do. Printed: wall seconds of our VOC scoring (voc07
and voc, single and several IoU thresholds), our COCO path (faster-coco-eval underneath, dict building
included), faster-coco-eval used directly with its default parameters, and pycocotools, with ratios and
the mAPs each produced (they must agree). Targets on a 2-core machine: VOC well under 10 s, COCO
no slower than about 2x faster-coco-eval.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surgery_core.data.classes import DIOR_CLASSES, ClassIndex  # noqa: E402
from surgery_core.data.detections import Detections  # noqa: E402
from surgery_core.eval.ap import evaluate  # noqa: E402

K = len(DIOR_CLASSES)
SEED_IOUS = (0.05, 0.10, 0.15, 0.20, 0.30, 0.50)
DEFAULT_TARBALL = Path(os.environ.get("SURGERY_SHARED", Path(__file__).resolve().parents[2] / "shared")) \
    / "data" / "dior" / "DIOR-annotations-hbb.tar.gz"
HBB = "DIOR/Annotations/Horizontal Bounding Boxes/"


def load_test_split(tarball: Path) -> tuple[Detections, int]:
    """Ground truth of the DIOR test split read straight from the tarball (image = position in test.txt)."""
    index = ClassIndex(DIOR_CLASSES)
    boxes, labels, images = [], [], []
    with tarfile.open(tarball, "r:gz") as tar:
        files = {}
        ids = None
        for m in tar:
            if m.name == "DIOR/ImageSets/Main/test.txt":
                ids = tar.extractfile(m).read().decode().split()
            elif m.name.startswith(HBB) and m.name.endswith(".xml"):
                files[m.name[len(HBB):-4]] = tar.extractfile(m).read()
    assert ids is not None, "test.txt missing from the tarball"
    for img, stem in enumerate(ids):
        # Trusted, known files: the stdlib parser is fine here (the library itself uses defusedxml).
        root = ET.fromstring(files[stem])
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            boxes.append([float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(index.lookup(obj.findtext("name")))
            images.append(img)
    gt = Detections(np.asarray(boxes), np.ones(len(boxes)), labels, images)
    return gt, len(ids)


def synth_detections(gt: Detections, n_images: int, seed: int = 0) -> Detections:
    """~0.98 detections per ground-truth box: 80% of boxes found (jittered), 8% found twice, plus false
    positives of random class anywhere; scores at 1/1000 resolution, so some tie."""
    rng = np.random.default_rng(seed)
    src = np.concatenate([np.flatnonzero(rng.random(len(gt)) < 0.80), np.flatnonzero(rng.random(len(gt)) < 0.08)])
    b = gt.xyxy[src]
    wh = np.maximum(b[:, 2:] - b[:, :2], 1.0)
    b = b + rng.normal(0.0, 0.1, b.shape) * np.tile(wh, 2)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    n_fp = max(0, 122_000 - len(b))
    xy = rng.uniform(0, 760, (n_fp, 2))
    fp = np.concatenate([xy, xy + rng.uniform(4, 120, (n_fp, 2))], axis=1)
    tp_score = np.clip(rng.normal(0.7, 0.15, len(b)), 0, 1)
    fp_score = np.clip(rng.normal(0.4, 0.15, n_fp), 0, 1)
    score = np.round(np.concatenate([tp_score, fp_score]), 3)
    return Detections(np.concatenate([b, fp]), score,
                      np.concatenate([gt.class_id[src], rng.integers(0, K, n_fp)]),
                      np.concatenate([gt.image[src], rng.integers(0, n_images, n_fp)]))


def timed(fn, repeat: int):
    """(best wall seconds over ``repeat`` runs, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _coco_inputs(gt: Detections, det: Detections) -> tuple[dict, list]:
    images = np.union1d(gt.image, det.image)
    g = gt.xyxy.copy()
    g[:, 2:] -= g[:, :2]
    d = det.xyxy.copy()
    d[:, 2:] -= d[:, :2]
    gt_ds = {"images": [{"id": i} for i in (images + 1).tolist()],
             "categories": [{"id": k + 1, "name": n} for k, n in enumerate(DIOR_CLASSES)],
             "annotations": [{"id": j + 1, "image_id": im, "category_id": c, "bbox": bb, "area": bb[2] * bb[3],
                              "iscrowd": 0}
                             for j, (im, c, bb) in enumerate(zip((gt.image + 1).tolist(),
                                                                 (gt.class_id + 1).tolist(), g.tolist()))]}
    res = [{"image_id": im, "category_id": c, "bbox": bb, "score": s}
           for im, c, bb, s in zip((det.image + 1).tolist(), (det.class_id + 1).tolist(), d.tolist(),
                                   det.score.tolist())]
    return gt_ds, res


def faster_coco_eval_direct(gt: Detections, det: Detections) -> float:
    """faster-coco-eval as a user would call it: default params, loadRes, summarize (dicts included)."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt_ds, res = _coco_inputs(gt, det)
    quiet = lambda *a, **k: None  # noqa: E731
    coco_gt = COCO(gt_ds, print_function=quiet)
    coco_dt = coco_gt.loadRes(res)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=quiet)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


def pycocotools_direct(gt: Detections, det: Detections) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_ds, res = _coco_inputs(gt, det)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_ds
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(res)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, default=DEFAULT_TARBALL)
    ap.add_argument("--skip-pycocotools", action="store_true", help="pycocotools takes over a minute")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (best is shown)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    gt, n_images = load_test_split(args.tarball)
    t_parse = time.perf_counter() - t0
    det = synth_detections(gt, n_images)
    print(f"DIOR test: {n_images} images, {len(gt)} boxes (parsed from the tarball in {t_parse:.2f} s); "
          f"{len(det)} synthetic detections; {os.cpu_count()} CPUs")

    rows = []   # (label, seconds, mAP)

    def run(label, fn):
        s, out = timed(fn, args.repeat)
        rows.append((label, s, out))
        print(f"  {label:<52} {s:8.2f} s   mAP {out:.6f}", flush=True)
        return s, out

    print("ours, VOC:")
    for interp in ("voc07", "voc"):
        run(f"{interp} @0.5", lambda i=interp: evaluate(gt, det, K, 0.5, i).mAP)
        run(f"{interp} @{','.join(f'{t:g}' for t in SEED_IOUS)} (one call)",
            lambda i=interp: float(evaluate(gt, det, K, SEED_IOUS, i).map_per_iou[-1]))
    run("voc07 six thresholds, one call each",
        lambda: float([evaluate(gt, det, K, t, "voc07").mAP for t in SEED_IOUS][-1]))
    print("COCO AP@[.50:.05:.95]:")
    s_ours, m_ours = run("ours (interp='coco', dicts included)", lambda: evaluate(gt, det, K, None, "coco").mAP)
    s_fce, m_fce = run("faster-coco-eval direct (default params, loadRes)", lambda: faster_coco_eval_direct(gt, det))
    print(f"  ours / faster-coco-eval = {s_ours / s_fce:.2f}x   (target <= ~2x); |mAP diff| = "
          f"{abs(m_ours - m_fce):.2e}")
    if not args.skip_pycocotools:
        s_pc, m_pc = run("pycocotools", lambda: pycocotools_direct(gt, det))
        print(f"  pycocotools / ours = {s_pc / s_ours:.1f}x, pycocotools / faster-coco-eval = {s_pc / s_fce:.1f}x;"
              f" |mAP diff| ours vs pycocotools = {abs(m_ours - m_pc):.2e}")
    voc = [s for label, s, _ in rows if label.startswith("voc")]
    print(f"slowest VOC measurement {max(voc):.2f} s (target well under 10 s)")
    return 0


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    code = main()
    print(load_line())
    raise SystemExit(code)
