"""Box extraction + threshold sweep + mAP at DIOR-test scale, on this machine's CPUs.

Real annotations (the 11,738 DIOR test files from ../shared/data/dior), synthetic heatmaps of DIOR geometry:
per image a 25x25 grid per class (ViT-B/32 at 800 px), smooth noise plus a bump on every ground-truth box,
all 20 classes, 10 percentiles x 6 IoU thresholds, VOC07 and VOC all-point. The run's own path is timed:
``RunBoxes`` (surgery_core.run.boxcells) cuts every (method, protocol, percentile) cell at most ``--max-dets`` boxes
per image into memory-mapped columns in a scratch run store, and ``surgery_core.run.evaluation.sweep_table`` scores them.

Per method (``--methods N``: N synthetic methods, each its own noise seed, named after the registered
methods; one method's grids are in memory at a time, as a run holds them):

- cutting boxes for both protocols ("present": the annotated classes of each image, and with ``--open``
  "open": every class) at 10 percentiles, capped;
- the sweep (percentile x IoU, VOC07 + VOC) from the stored cells;
- one cell cold (what the first Per-class AP view of the dashboard costs: a new process opens the cell store,
  reads one cell, matches and scores it), for a cell already stored and for one cut on the spot.

Then the cap's effect: on the first ``--cap-images`` images, method 0, both protocols, every sweep cell, the
largest |mAP(cap) - mAP(no cap)| and the share of boxes the cap drops.

Last line: ``TOTAL methods=... images=... wall_s=... peak_rss_gb=...`` (peak of the summed resident memory of
this process and its workers, sampled every 0.2 s), the CPU seconds (this process and its workers) in all and per
method, and the same without the making of the synthetic grids (the benchmark's stand-in for a run's stored grids,
which a run reads memory-mapped: about a second of random draws per thousand images and method).

Targets (issue 17): ten methods, full split, both protocols: peak RSS <= 8 GB, wall <= 30 min, first
Per-class AP view < 15 s. (Issue 3: one cell < 1 s once its boxes exist.) Issue 27: the same in at most 10 minutes
and 4 GB on 2 cores, at most 120 CPU seconds per method.

    python benchmarks/bench_sweep.py [--images N] [--methods 10] [--workers 2] [--open] [--max-dets 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from surgery_core.data.datasets import load_dior  # noqa: E402
from surgery_core.eval.ap import evaluate, voc_match  # noqa: E402
from surgery_core.eval.boxes import BoxParams  # noqa: E402
from surgery_core.eval.cutting import detections_at  # noqa: E402
from surgery_core.eval.protocols import Cell, protocol  # noqa: E402
from surgery_core.model.methods import METHODS  # noqa: E402
from surgery_core.run.boxcells import RunBoxes  # noqa: E402
from surgery_core.run.config import SEED_IOUS, DataConfig, RunConfig  # noqa: E402
from surgery_core.run.evaluation import box_params_for, ground_truth_for, present_pairs, sweep_table  # noqa: E402
from surgery_core.run.grids import GridSet  # noqa: E402

#: The shared folder beside the checkout, or $SURGERY_SHARED (as the tests read it: a worktree's checkout has none
#: beside it).
TARBALL = (Path(os.environ.get("SURGERY_SHARED", Path(__file__).resolve().parents[2] / "shared"))
           / "data" / "dior" / "DIOR-annotations-hbb.tar.gz")


def synthetic_grids(ds, grid: int, rng) -> np.ndarray:
    """[N, 20, grid, grid] float32: smooth noise, plus a Gaussian bump on each GT box of the class.

    The bumps of all boxes are computed at once, in float64, and added in rounds (the r-th box of every (image,
    class) in round r), so that each grid cell is rounded to float32 after each box as a loop over the boxes
    would: the same grids, bit for bit, as adding them one box at a time, about twice as fast."""
    n, k = len(ds.images), len(ds.classes)
    g = np.empty((n, k, grid, grid), np.float32)
    for lo in range(0, n, 512):  # the same draws as one call, without its float64 copy of every grid
        g[lo:lo + 512] = rng.normal(0, 0.05, (min(512, n - lo), k, grid, grid))
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    img = np.repeat(np.arange(n, dtype=np.int64), [len(r.labels) for r in ds.images])
    cls = np.concatenate([np.asarray(r.labels, np.int64) for r in ds.images] or [np.zeros(0, np.int64)])
    xyxy = np.concatenate([np.asarray(r.xyxy, np.float64).reshape(-1, 4) for r in ds.images] or [np.zeros((0, 4))])
    s = grid / np.array([r.width for r in ds.images] or [1], np.float64)[img]
    x1, y1, x2, y2 = xyxy.T
    cx, cy = (x1 + x2) / 2 * s, (y1 + y2) / 2 * s
    sx, sy = np.maximum((x2 - x1) * s / 2, 0.5), np.maximum((y2 - y1) * s / 2, 0.5)
    key = img * k + cls
    order = np.argsort(key, kind="stable")  # each (image, class)'s boxes in their order
    first = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1]
    rank = np.empty(len(key), np.int64)
    rank[order] = np.arange(len(key)) - np.repeat(first, np.diff(np.r_[first, len(key)]))
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = np.flatnonzero(rank == r)
        c = lambda v: v[sel][:, None, None]  # noqa: E731
        g[img[sel], cls[sel]] += 0.3 * np.exp(-(((xx - c(cx)) / c(sx)) ** 2 + ((yy - c(cy)) / c(sy)) ** 2) / 2)
    return g


class PeakRSS:
    """Peak of the summed resident set size of this process and all its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _tree_rss() -> int:
        kids: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                kids.setdefault(int(parts[1]), []).append(int(d))
                rss[int(d)] = int(parts[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        total, todo = 0, [os.getpid()]
        while todo:
            p = todo.pop()
            total += rss.get(p, 0)
            todo.extend(kids.get(p, []))
        return total

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._tree_rss())


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished workers: on a shared machine the wall time
    depends on the others' load, the CPU time does not."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def synthetic_probs(ds, rng) -> np.ndarray:
    """[N, 20] image-level class probabilities: a softmax leaning towards the annotated classes."""
    logits = rng.normal(0, 1.0, (len(ds.images), len(ds.classes)))
    for i, rec in enumerate(ds.images):
        logits[i, np.unique(rec.labels)] += 2.0
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def method_grids(ds, name: str, seed: int, grid: int) -> tuple[GridSet, float]:
    """One synthetic method as a run holds it: grids [N, 20, g, g], probabilities, rows = every image; and the CPU
    seconds of the thread that made it."""
    c = time.thread_time()
    rng = np.random.default_rng(seed)
    gs = GridSet(key=f"bench-{name}-seed{seed}-grid{grid}-n{len(ds.images)}", classes=tuple(ds.classes),
                 rows=np.arange(len(ds.images), dtype=np.int64), grids={name: synthetic_grids(ds, grid, rng)},
                 probs=synthetic_probs(ds, rng), input_size=grid * 32)
    return gs, time.thread_time() - c


FIRST_VIEW = """
import sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
import numpy as np
from surgery_core.eval.ap import evaluate, voc_match
from surgery_core.run.boxcells import CellStore
from surgery_core.eval.protocols import Cell
from surgery_core.data.detections import Detections
from surgery_core.run.pairs import ap_table
gt_cols = np.load({gt!r})
gt = Detections(gt_cols["xyxy"], np.ones(len(gt_cols["cls"])), gt_cols["cls"], gt_cols["image"])
t1 = time.perf_counter()
det = CellStore({root!r}).read(Cell.of({method!r}, {proto!r}, {p!r}))
res = evaluate(gt, det, 20, {iou!r}, "voc07", match=voc_match(gt, det))
table = ap_table({{{method!r}: res}}, tuple(str(k) for k in range(20)))
t2 = time.perf_counter()
print(json.dumps({{"boxes": len(det), "mAP": res.mAP, "import_s": t1 - t0, "view_s": t2 - t1, "total_s": t2 - t0}}))
"""


def first_view(repo: str, root: Path, gt_file: Path, method: str, proto: str, p: float, iou: float) -> dict:
    """The Per-class AP view of one method from stored cells, in a fresh process (cold imports and page cache
    of a just-written store): read one cell memory-mapped, match, AP per class."""
    code = FIRST_VIEW.format(repo=repo, gt=str(gt_file), root=str(root), method=method, proto=proto, p=p, iou=iou)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cap_effect(ds, gs: GridSet, cfg: RunConfig, n_images: int, workers: int) -> str:
    """Largest |mAP(cap) - mAP(no cap)| over every sweep cell of method 0 on the first ``n_images`` images."""
    rows = np.arange(min(n_images, len(ds.images)))
    gt = ground_truth_for(ds, rows)
    name = next(iter(gs.grids))
    sizes = np.asarray([(ds.images[i].width, ds.images[i].height) for i in rows])
    pr, pc = present_pairs(ds, rows)
    out = []
    for proto in cfg.protocols:
        pairs = {} if protocol(proto).all_classes else dict(pair_image=pr, pair_class=pc)
        params = box_params_for(cfg, proto)
        runs = {cap: detections_at(gs.grids[name][rows], sizes, params, cfg.sweep_percentiles,
                                   class_probs=gs.probs[rows], workers=workers, max_dets=cap, **pairs)
                for cap in (0, cfg.boxes.max_dets)}
        worst, n0, n1 = 0.0, 0, 0
        for p in cfg.sweep_percentiles:
            d0, d1 = runs[0][p], runs[cfg.boxes.max_dets][p]
            n0, n1 = n0 + len(d0), n1 + len(d1)
            for interp in ("voc07", "voc"):
                a = evaluate(gt, d0, 20, SEED_IOUS, interp, match=voc_match(gt, d0)).map_per_iou
                b = evaluate(gt, d1, 20, SEED_IOUS, interp, match=voc_match(gt, d1)).map_per_iou
                worst = max(worst, float(np.nanmax(np.abs(a - b))))
        out.append(f"{proto}: max |dmAP| {worst:.2e} over {len(cfg.sweep_percentiles)} percentiles x "
                   f"{len(SEED_IOUS)} IoUs x VOC07+VOC; boxes {n0:,} -> {n1:,} ({1 - n1 / max(n0, 1):.1%} dropped)")
    return f"cap effect (maxDets {cfg.boxes.max_dets} vs none, first {len(rows)} images, {name}): " + "; ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=None, help="first N test images (default: all 11,738)")
    ap.add_argument("--methods", type=int, default=1, help="synthetic methods (at most the registered ten)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grid", type=int, default=25)
    ap.add_argument("--open", action="store_true", help="also the open protocol (all 20 classes)")
    ap.add_argument("--max-dets", dest="max_dets", type=int, default=100, help="cap per image (0 = none)")
    ap.add_argument("--cap-images", dest="cap_images", type=int, default=1000,
                    help="images of the cap-vs-no-cap comparison (0 = skip)")
    ap.add_argument("--store", help="scratch run store (default: a temporary folder, removed at the end)")
    args = ap.parse_args()
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    names = list(METHODS)[:args.methods]
    t_all = time.perf_counter()
    scratch = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    scratch.mkdir(parents=True, exist_ok=True)
    with PeakRSS() as rss:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            with tarfile.open(TARBALL) as tar:
                tar.extractall(tmp, filter="data")
            ds = load_dior(Path(tmp) / "DIOR", "test", limit=args.images)
            print(f"annotations: {len(ds.images)} images, {len(ds.ground_truth())} boxes, "
                  f"read in {time.perf_counter() - t:.1f} s", flush=True)
        protocols = ("present", "open") if args.open else ("present",)
        cfg = RunConfig(data=DataConfig(kind="dior", root="bench", split="test", limit=args.images),
                        methods=tuple(names), protocols=protocols, boxes=BoxParams(max_dets=args.max_dets),
                        interps=("voc07", "voc"))
        gt = ds.ground_truth()
        gt_file = scratch / "gt.npz"
        np.savez(gt_file, xyxy=gt.xyxy, cls=gt.class_id, image=gt.image)
        n_pairs = {"present": len(present_pairs(ds, np.arange(len(ds.images)))[0]),
                   "open": len(ds.images) * len(ds.classes)}
        first = None
        # Making the synthetic grids is the benchmark's stand-in for a run's stored grids (read memory-mapped): the
        # next method's are made in a thread (numpy's random draws run without the GIL) while this one's are swept.
        synth_cpu = 0.0
        maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthetic-grids")
        upcoming = maker.submit(method_grids, ds, names[0], 0, args.grid)
        for k, name in enumerate(names):
            t, c = time.perf_counter(), cpu_seconds()
            gs, made_cpu = upcoming.result()
            upcoming = None
            synth_cpu += made_cpu
            t_grids = time.perf_counter() - t
            mcfg = cfg.model_copy(update={"methods": (name,)})
            boxes = RunBoxes(mcfg, ds, gs, scratch / "boxes" / name, workers=args.workers)
            if k == 0:  # the first view before anything is stored: one cell cut on the spot
                t = time.perf_counter()
                boxes.ensure([name], ["present"], [cfg.boxes.percentile])
                det = boxes[Cell.of(name, "present", cfg.boxes.percentile)]
                evaluate(gt, det, 20, 0.1, "voc07", match=voc_match(gt, det))
                first = time.perf_counter() - t
            t = time.perf_counter()
            boxes.ensure(percentiles=cfg.sweep_percentiles)
            t_cut = time.perf_counter() - t
            if k + 1 < len(names):  # after the cut, whose memory is the peak
                upcoming = maker.submit(method_grids, ds, names[k + 1], k + 1, args.grid)
            t = time.perf_counter()
            doc = sweep_table(mcfg, ds, gs, boxes)
            t_sweep = time.perf_counter() - t
            n_box = {pr: sum(len(boxes[Cell.of(name, pr, p)]) for p in cfg.sweep_percentiles) for pr in protocols}
            best = {pr: doc.table[name][pr]["voc07"].best for pr in protocols}
            print(f"[{k + 1}/{len(names)} {name}] grids {t_grids:.1f} s (waited for; made meanwhile); cut {sum(n_pairs[p] for p in protocols):,} "
                  f"pairs x {len(cfg.sweep_percentiles)} percentiles ({'+'.join(protocols)}) -> "
                  + ", ".join(f"{pr} {n:,}" for pr, n in n_box.items())
                  + f" boxes (maxDets {args.max_dets}) in {t_cut:.1f} s ({args.workers} workers); sweep "
                  f"{len(cfg.sweep_percentiles)}x{len(SEED_IOUS)} cells x VOC07+VOC x {len(protocols)} protocols "
                  f"{t_sweep:.1f} s; best VOC07 mAP "
                  + ", ".join(f"{pr} {b.map:.4f} at p{b.percentile:g} IoU {b.iou:g}" for pr, b in best.items())
                  + f"; CPU {cpu_seconds() - c:.0f} s for this method; peak RSS so far {rss.peak / 2**30:.2f} GB",
                  flush=True)
            if k == 0 and args.cap_images:
                t = time.perf_counter()
                print(cap_effect(ds, gs, mcfg, args.cap_images, args.workers)
                      + f" ({time.perf_counter() - t:.0f} s)", flush=True)
            del gs, boxes
        maker.shutdown()
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for proto in protocols:
            v = first_view(repo, scratch / "boxes" / names[0], gt_file, names[0], proto, cfg.boxes.percentile, 0.1)
            print(f"first Per-class AP view, {names[0]} {proto} p{cfg.boxes.percentile:g} VOC07 IoU 0.1, maxDets "
                  f"{args.max_dets}, cell stored, fresh process: {v['total_s']:.2f} s ({v['import_s']:.2f} s imports "
                  f"and ground truth, {v['view_s']:.2f} s read {v['boxes']:,} boxes + match + AP per class)",
                  flush=True)
        print(f"first Per-class AP view, {names[0]} present p{cfg.boxes.percentile:g}, nothing stored yet (cut that "
              f"one cell of {n_pairs['present']:,} pairs, match, AP): {first:.1f} s", flush=True)
        disk = sum(f.stat().st_size for f in (scratch / "boxes").rglob("*.npy"))
        print(f"box cells on disk: {disk / 2**30:.2f} GB", flush=True)
    if not args.store:
        shutil.rmtree(scratch, ignore_errors=True)
    cpu = cpu_seconds()
    print(f"TOTAL methods={len(names)} images={len(ds.images)} wall_s={time.perf_counter() - t_all:.0f} "
          f"peak_rss_gb={rss.peak / 2**30:.2f} cpu_s={cpu:.0f} cpu_s_per_method={cpu / len(names):.0f} "
          f"synthetic_grids_cpu_s={synth_cpu:.0f} cpu_s_per_method_without_them={(cpu - synth_cpu) / len(names):.0f} "
          f"load_avg_1min={os.getloadavg()[0]:.1f}")
    print(load_line())


if __name__ == "__main__":
    main()
