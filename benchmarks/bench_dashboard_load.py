"""Dashboard under load: 8 browser sessions at once on one ``streamlit run dashboard/app.py`` server.

Starts the server on the demo run (no configuration: ``RunConfig()``) with its cache and run store in an
isolated folder (like the tests: never ``~``), computes the run's products first in this process (so the server
finds them in the store), warms the server with one session visiting every page, then opens ``--sessions``
Playwright contexts in one headless chromium. For ``--duration`` seconds each session loops over pages and
controls: navigates (top navigation: a client-side page switch in the same session), moves the percentile and
IoU sliders on Compare and Sweep, switches the protocol on Sweep and Per-class AP. It prints:

- errors: any exception box (``stException``) or error alert a page shows after an interaction, and any
  interaction that did not finish within ``--timeout`` seconds (each with its session, page and text),
- model loads in the server process: lines ``dashboard/data.py`` appends to ``$SURGERY_MODEL_LOAD_LOG`` each
  time its process-wide cached loader really loads a model (should be 1: sessions share it),
- peak memory: the server's VmHWM (peak resident set) and the peak of the summed VmRSS of the server and its
  child processes (box/quality workers), sampled every 0.2 s from /proc,
- interaction latency p50/p95/max: from the moment a control is changed (or a page link clicked) to the end
  of the last script run it caused: the ``script_finished`` message of Streamlit's websocket (fragment reruns
  included; runs cut short for a rerun do not count), once no run has started for 0.3 s; per kind (load,
  navigate, slider, toggle). The browser's drawing after the last message is not included,
- the machine's load average before and after (the figures depend on what else runs).

    .venv/bin/python benchmarks/bench_dashboard_load.py                      # 8 sessions, 60 s, demo run
    .venv/bin/python benchmarks/bench_dashboard_load.py --sessions 4 --duration 20 --cache bench-cache

Needs Debian chromium (/usr/bin/chromium) and the ``playwright`` Python package (no browser download).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboard import serving  # noqa: E402
from dashboard.serving import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from dashboard.state import PAGE_TITLES  # noqa: E402

QUIET_S = 0.3

ERRORS_JS = """() => [...document.querySelectorAll(
    '[data-testid="stException"], [data-testid="stAlertContentError"]')].map(e => e.innerText.slice(0, 300))"""


# ------------------------------------------------------------------------------------------ the run
def prepare(env: dict[str, str], limit: int | None) -> str:
    """Compute the run (grids, boxes, AP tables, sweep, quality) into the isolated store; its hash."""
    os.environ.update(env)
    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run

    cfg = RunConfig(data=DataConfig(limit=limit)) if limit else RunConfig()
    t0 = time.perf_counter()
    run = Run.open(cfg)
    run.boxes, run.ap_tables(), run.sweep(), run.quality()
    print(f"run {cfg.run_hash}: {len(run.grids.rows)} images, prepared in {time.perf_counter() - t0:.1f} s "
          f"({run.grids.computed} heatmaps computed, {run.grids.reused} reused)", flush=True)
    if limit:
        env["SURGERY_DASHBOARD_CONFIG"] = cfg.model_dump_json()
    return cfg.run_hash


# ------------------------------------------------------------------------------------------ memory
def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.stop_ = pid, every, threading.Event()
        self.peak_tree_kb, self.peak_procs, self.hwm_kb = 0, 1, 0

    def run(self) -> None:
        while not self.stop_.is_set():
            pids = _tree(self.pid)
            self.peak_tree_kb = max(self.peak_tree_kb, sum(_status_kb(p, "VmRSS") for p in pids))
            self.peak_procs = max(self.peak_procs, len(pids))
            self.hwm_kb = max(self.hwm_kb, _status_kb(self.pid, "VmHWM"))
            self.stop_.wait(self.every)


# ------------------------------------------------------------------------------------------ sessions
class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.interactions = 0


class Watch:
    """A session's script runs, from the ForwardMsgs its page receives on Streamlit's websocket: a run (a fragment
    rerun included) has ended when ``script_finished`` arrives (not counting runs cut short for a rerun)."""

    def __init__(self):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.msg, self.done, self.running, self.last_done = ForwardMsg, 0, False, time.monotonic()
        self.early = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")

    def attach(self, pg) -> None:
        pg.on("websocket", lambda ws: ws.on("framereceived", self.frame))

    def frame(self, payload) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            return
        try:
            msg = self.msg.FromString(bytes(payload))
        except Exception:  # noqa: BLE001  (not a ForwardMsg)
            return
        kind = msg.WhichOneof("type")
        if kind == "new_session" or (kind == "session_status_changed" and msg.session_status_changed.script_is_running):
            self.running = True
        elif kind == "script_finished" and msg.script_finished != self.early:
            self.running, self.done, self.last_done = False, self.done + 1, time.monotonic()


async def interact(pg, watch: Watch, action, kind: str, where: str, stats: Stats, timeout: float) -> None:
    """Run ``action`` (a coroutine function), time it to the end of the script runs it caused, check errors."""
    before, started = watch.done, time.monotonic()
    try:
        await action()
        while not (watch.done > before and not watch.running):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no finished script run within {timeout:g} s")
            await asyncio.sleep(0.02)
        while True:  # idle for QUIET_S: a rerun the first one caused (URL sync, page switch) counts too
            last = watch.last_done
            await asyncio.sleep(QUIET_S)
            if not watch.running and watch.last_done == last:
                break
            if time.monotonic() - started > 2 * timeout:  # a server that never settles: take what was seen
                break
        stats.latency.setdefault(kind, []).append(last - started)
        stats.interactions += 1
    except Exception as exc:  # noqa: BLE001  (a timeout or a closed page: reported, the session goes on)
        stats.errors.append(f"{where} {kind}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return
    for text in await pg.evaluate(ERRORS_JS):
        stats.errors.append(f"{where} {kind}: page shows: {text!r}")


async def nav(pg, page: str) -> None:
    await pg.locator('[data-testid="stTopNavLink"]', has_text=PAGE_TITLES[page]).first.click()


def slider(pg, key: str, rng: random.Random):
    async def move():
        el = pg.locator(f'.st-key-{key} input[type="range"] >> visible=true').first
        value, lo, hi = await el.evaluate("e => [Number(e.value), Number(e.min), Number(e.max)]")
        await el.focus()
        await el.press("ArrowLeft" if value >= hi or (value > lo and rng.random() < 0.5) else "ArrowRight")
    return move


def toggle(pg, key: str):
    async def click():  # the option not selected now (waits until the control is drawn)
        await pg.locator(f'.st-key-{key} [role="radio"][aria-checked="false"] >> visible=true').first.click()
    return click


async def new_context(browser):
    """A browser context whose pages cannot reach beyond this machine, as every browser test's
    (:func:`dashboard.serving.block_outside`): a request off the machine is aborted and counted as an error."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await serving.block_outside(ctx)
    return ctx


async def session(browser, url: str, n: int, deadline: float, stats: Stats, timeout: float, seed: int,
                  think: float = 0.0) -> None:
    rng = random.Random(seed)

    async def pause():  # a user looks at the result before the next change (0: back to back, a stress test)
        if think > 0:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
    ctx = await new_context(browser)
    pg = await ctx.new_page()
    pg.set_default_timeout(timeout * 1000)
    watch = Watch()
    watch.attach(pg)
    where = f"session {n}"
    try:
        await interact(pg, watch, lambda: pg.goto(url + "/"), "load", f"{where} browse", stats, timeout)
        plan = [("compare", [("slider", "p"), ("slider", "iou"), ("slider", "p")]),
                ("sweep", [("slider", "iou"), ("slider", "p"), ("toggle", "proto")]),
                ("ap", [("toggle", "proto")]),
                ("quality", []), ("browse", [])]
        rng.shuffle(plan)
        while time.monotonic() < deadline:
            for page, controls in plan:
                if time.monotonic() >= deadline:
                    break
                await interact(pg, watch, lambda p=page: nav(pg, p), "navigate", f"{where} {page}", stats, timeout)
                await pause()
                for kind, key in controls:
                    if time.monotonic() >= deadline:
                        break
                    act = slider(pg, key, rng) if kind == "slider" else toggle(pg, key)
                    await interact(pg, watch, act, kind, f"{where} {page}/{key}", stats, timeout)
                    await pause()
    finally:
        await ctx.close()


async def drive(url: str, sessions: int, duration: float, timeout: float, think: float = 0.0
                ) -> tuple[Stats, Stats, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        warm = Stats()  # one session over every page first: the run opens, caches fill
        t0 = time.monotonic()
        ctx = await new_context(browser)
        pg = await ctx.new_page()
        pg.set_default_timeout(timeout * 1000)
        watch = Watch()
        watch.attach(pg)
        await interact(pg, watch, lambda: pg.goto(url + "/"), "load", "warm-up browse", warm, timeout)
        for page in ("compare", "ap", "sweep", "quality", "run", "browse"):
            await interact(pg, watch, lambda p=page: nav(pg, p), "navigate", f"warm-up {page}", warm, timeout)
        await ctx.close()
        warm_s = time.monotonic() - t0
        stats = Stats()
        deadline = time.monotonic() + duration
        await asyncio.gather(*(session(browser, url, i, deadline, stats, timeout, i, think) for i in range(sessions)))
        await browser.close()
    return warm, stats, warm_s


# ------------------------------------------------------------------------------------------ report
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load after warm-up")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before an interaction counts as failed")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds a session waits after each interaction (uniform 0.5x-1.5x; 0 = back to back)")
    ap.add_argument("--limit", type=int, default=None, help="first N scenes of the demo test split (default: all)")
    ap.add_argument("--cache", default=None, help="cache/run store folder to use and keep (default: a fresh "
                                                  "temporary folder, removed afterwards)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not CHROMIUM.is_file():
        sys.exit("needs Debian chromium at /usr/bin/chromium")

    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="surgery-load-"))
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="surgery-load-logs-"))
    loads_log = work / "model-loads.log"
    env = {k: v for k, v in os.environ.items() if k not in ("SURGERY_DASHBOARD_CONFIG", "SURGERY_DATA_ROOTS")}
    env.update(SURGERY_CACHE=str(cache), SURGERY_STORE=str(cache / "store"), SURGERY_MODEL_LOAD_LOG=str(loads_log))
    load_before = os.getloadavg()
    run_hash = prepare(env, args.limit)
    try:
        proc, url = serving.start(env, work / "server.log")
    except RuntimeError as exc:
        sys.exit(str(exc))
    sampler = MemorySampler(proc.pid)
    sampler.start()
    try:
        warm, stats, warm_s = asyncio.run(drive(url, args.sessions, args.duration, args.timeout, args.think))
    finally:
        sampler.stop_.set()
        sampler.join()
        hwm_kb = max(sampler.hwm_kb, _status_kb(proc.pid, "VmHWM"))
        serving.stop(proc, timeout=15)
    load_after = os.getloadavg()
    loads = [ln for ln in loads_log.read_text().splitlines() if ln.strip()] if loads_log.is_file() else []
    all_lat = [x for xs in stats.latency.values() for x in xs]
    errors = warm.errors + stats.errors + [f"request off this machine blocked: {u}"
                                           for u in sorted(set(serving.OUTSIDE_REQUESTS))]

    print(f"\nDashboard load: {args.sessions} sessions x {args.duration:g} s on run {run_hash} "
          f"({os.cpu_count()} CPUs, {args.think:g} s think time; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f})")
    print(f"warm-up (1 session, every page): {warm_s:.1f} s")
    print(f"interactions: {stats.interactions} finished ({stats.interactions / args.duration:.2f}/s)")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("   ", e)
    print(f"model loads in the server process: {len(loads)}")
    print(f"server peak RSS (VmHWM): {hwm_kb / 1024:.0f} MiB; peak RSS of server + children: "
          f"{sampler.peak_tree_kb / 1024:.0f} MiB (up to {sampler.peak_procs} processes)")
    if all_lat:
        print(f"latency, all interactions: p50 {pct(all_lat, 0.5):.2f} s  p95 {pct(all_lat, 0.95):.2f} s  "
              f"max {max(all_lat):.2f} s  (n={len(all_lat)})")
        for kind, xs in sorted(stats.latency.items()):
            print(f"  {kind:<9} n={len(xs):>4}  p50 {pct(xs, 0.5):6.2f} s  p95 {pct(xs, 0.95):6.2f} s  "
                  f"mean {statistics.mean(xs):6.2f} s")
    out = {"sessions": args.sessions, "duration_s": args.duration, "run": run_hash, "cpus": os.cpu_count(),
           "loadavg_before": load_before, "loadavg_after": load_after, "warmup_s": warm_s,
           "interactions": stats.interactions, "errors": errors, "model_loads": len(loads),
           "server_vmhwm_mib": hwm_kb / 1024, "tree_peak_rss_mib": sampler.peak_tree_kb / 1024,
           "latency_s": {k: {"n": len(v), "p50": pct(v, 0.5), "p95": pct(v, 0.95)} for k, v in stats.latency.items()},
           "latency_all_s": {"p50": pct(all_lat, 0.5), "p95": pct(all_lat, 0.95)} if all_lat else None}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    if not args.cache:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
