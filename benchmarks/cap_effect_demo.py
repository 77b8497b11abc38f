"""How much the detection cap moves AP on a run: every number of ``ap_tables`` and ``sweep`` with the run's cap
against the same run without a cap (``boxes.max_dets = 0``).

Prints, per protocol and interpolation, the largest |difference| over methods, IoU thresholds and (for the sweep)
percentiles, and how many boxes the cap dropped (at the run's percentile, and over the sweep).

    .venv/bin/python benchmarks/cap_effect_demo.py [--config run.json] [--max-dets 100]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from surgery_core.run.config import RunConfig  # noqa: E402
from surgery_core.run.facade import Run  # noqa: E402


def flat(x):
    return np.array([np.nan if v is None else v for v in np.ravel(np.asarray(x, dtype=object))], float)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", help="run configuration JSON (default: the demo run)")
    ap.add_argument("--max-dets", dest="max_dets", type=int, default=100)
    args = ap.parse_args()
    base = RunConfig.from_file(args.config) if args.config else RunConfig()
    runs = {cap: Run.open(base.model_copy(update={"boxes": base.boxes.model_copy(update={"max_dets": cap})}))
            for cap in (args.max_dets, 0)}
    capped, free = runs[args.max_dets], runs[0]
    print(f"data {base.data.kind}/{base.data.split}, {len(capped.grids.rows)} images, {len(base.methods)} methods; "
          f"runs {capped.run_hash} (maxDets {args.max_dets}) vs {free.run_hash} (no cap)")
    ta, tb = capped.ap_tables(), free.ap_tables()
    sa, sb = capped.sweep(), free.sweep()
    for proto in base.protocols:
        n = {cap: sum(len(r.detections(m, proto, p)) for m in base.methods for p in base.sweep_percentiles)
             for cap, r in runs.items()}
        line = [f"[{proto}] boxes over the sweep {n[0]:,} -> {n[args.max_dets]:,} "
                f"({1 - n[args.max_dets] / max(n[0], 1):.2%} dropped)"]
        for interp in base.interps:
            d = max(np.nanmax(np.abs(flat(list(ta.entry(m, proto, interp).map_per_iou.values()))
                                     - flat(list(tb.entry(m, proto, interp).map_per_iou.values()))))
                    for m in base.methods)
            line.append(f"{interp} mAP at p{base.boxes.percentile:g}: max |d| {d:.2e}")
            if interp in ("voc07", "voc"):
                ca = {m: sa.cell(m, proto, interp) for m in base.methods}
                cb = {m: sb.cell(m, proto, interp) for m in base.methods}
                ds = max(np.nanmax(np.abs(flat(ca[m].map) - flat(cb[m].map))) for m in base.methods)
                dc = max(np.nanmax(np.abs(flat(list(ca[m].per_class.values())) - flat(list(cb[m].per_class.values()))))
                         for m in base.methods)
                line.append(f"{interp} sweep mAP max |d| {ds:.2e} (per-class AP max |d| {dc:.2e})")
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
