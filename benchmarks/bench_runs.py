"""The Runs page with a full store: time to draw the leaderboard and a cross-run Prev/Next step in headless chromium.

Fills a fresh store (in a temporary folder) with ``--runs`` runs of the demo test split (first ``--limit`` scenes,
every method), differing in their box rule (percentile x morphology kernel: one forward pass serves them all),
each with its AP tables and heatmap quality computed once. Then, in headless chromium at 1280 px:

- the Runs page opened (navigation -> the table and every control drawn, the script idle), first load and again;
- two rows compared, then Prev/Next over the shared images (click -> URL updated -> every picture loaded).

Targets (issue 23): under 2 s for the page, under 1 s for a Prev/Next step.

Measured 2026-12-07 in the short mode below on the shared 2-core test machine at load average 13-14 (six
engineers' tests at once), so an upper bound: store of 50 runs x 10 methods (500 rows) listed from its files in
0.76 s cold, milliseconds warm; Runs page 2.1 s median (22 s on the server's very first page: importing torch
and the app); cross-run view opened 6.1 s (two runs opened from the store); Prev/Next 1.55 s (new image) and
1.34 s (seen before) medians. The cross-run view is a fragment, so a step redraws only itself (4.5 s when it
redrew the 500-row table too).

    .venv/bin/python benchmarks/bench_runs.py                       # 50 runs, 40 scenes
    .venv/bin/python benchmarks/bench_runs.py --runs 50 --limit 6 --repeats 5   # the short mode
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
PERCENTILES = (50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0)
KERNELS = (1, 3, 5, 7, 9, 11, 15)


def fill(n: int, limit: int) -> list:
    """``n`` runs differing in (percentile, kernel), their AP tables and quality computed; returns the runs."""
    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run

    base = RunConfig(data=DataConfig(limit=limit))
    runs = []
    for k in range(n):
        boxes = base.boxes.model_copy(update={"percentile": PERCENTILES[k % len(PERCENTILES)],
                                              "morph_kernel": KERNELS[k // len(PERCENTILES) % len(KERNELS)]})
        run = Run.open(base.model_copy(update={"boxes": boxes}))
        run.ap_tables(), run.quality(), run.corloc()
        runs.append(run)
    return runs


def summary(name: str, xs: list[float], target: float) -> str:
    med = statistics.median(xs)
    return (f"{name:<40} n={len(xs):>2}  median {med * 1e3:7.0f} ms  max {max(xs) * 1e3:7.0f} ms  "
            f"target {target * 1e3:.0f} ms ({'met' if med < target else 'NOT met'}, median/target "
            f"{med / target:.2f})")


def drawn(pg) -> None:
    pg.wait_for_selector('[data-testid="stMain"] [data-testid="stElementContainer"]', state="attached")
    pg.wait_for_selector(IDLE)


def images_loaded(pg) -> None:
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMain] img')]"
                         ".every(i => i.complete && i.naturalWidth > 0)")


def bench_browser(runs: list, repeats: int, env: dict[str, str]) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from dashboard import serving

    proc, base = serving.start({**os.environ, **env}, timeout=180)
    out: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            pg = serving.open_page(p, 1280, 1000)
            for k in range(repeats + 1):
                t0 = time.perf_counter()
                pg.goto(f"{base}/runs")
                drawn(pg)
                pg.wait_for_selector('[data-testid="stDataFrame"] canvas')
                out.setdefault("Runs page (first load)" if k == 0 else "Runs page (again)", []).append(
                    time.perf_counter() - t0)
            pairs = f"{runs[0].run_dir.name}:vv_mixed,{runs[-1].run_dir.name}:vv_mixed"
            t0 = time.perf_counter()
            pg.goto(f"{base}/runs?pairs={pairs}")
            drawn(pg)
            pg.wait_for_selector(".st-key-rnext button")
            images_loaded(pg)
            out["cross-run view opened (2 runs)"] = [time.perf_counter() - t0]
            for rnd in ("first visit", "seen before"):
                for direction in ("rnext", "rprev") if rnd == "seen before" else ("rnext",):
                    for _ in range(repeats):
                        pg.wait_for_selector(IDLE)
                        url = pg.url
                        t0 = time.perf_counter()
                        pg.locator(f".st-key-{direction} button >> visible=true").first.click()
                        pg.wait_for_url(lambda u: u != url)
                        images_loaded(pg)
                        pg.wait_for_selector(IDLE)
                        out.setdefault(f"Prev/Next step ({rnd})", []).append(time.perf_counter() - t0)
            pg.context.browser.close()
    finally:
        serving.stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--limit", type=int, default=40, help="demo scenes per run")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        env = {"SURGERY_CACHE": str(Path(tmp) / "cache"), "SURGERY_STORE": str(Path(tmp) / "store")}
        os.environ.update(env)
        t0 = time.perf_counter()
        runs = fill(args.runs, args.limit)
        from surgery_core.run import stored
        from surgery_core.run.store import default_store

        t1 = time.perf_counter()
        rows = stored.leaderboard(default_store())
        t_list = time.perf_counter() - t1
        print(f"store: {args.runs} runs x {len(runs[0].cfg.methods)} methods = {len(rows)} rows, {args.limit} demo "
              f"scenes each, filled in {t1 - t0:.0f} s; listed from the files in {t_list * 1e3:.0f} ms")
        print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
        env["SURGERY_DASHBOARD_CONFIG"] = runs[0].cfg.model_dump_json()
        results = bench_browser(runs, args.repeats, env)
        for name, xs in results.items():
            target = 2.0 if "page" in name or "opened" in name else 1.0
            print("  " + summary(name, xs, target))
        print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
