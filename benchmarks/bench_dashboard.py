"""Dashboard responsiveness: time from a control change to a redrawn Compare page on the demo run.

Measured with ``streamlit.testing.v1.AppTest``: each change reruns the whole script (frame, sidebar, page), an
upper bound of the Python time, where a browser reruns only the Compare fragment. The run is opened and its
boxes cut before timing starts ("once the run is cached"). Reported per control: the first time a setting is
seen (overlays drawn and encoded) and again (encoded images served from ``st.cache_data``).

With ``--browser`` the same in headless chromium, split into the server's part (click until the last websocket
message of the rerun: script, post-run work, transfer) and the rest (the browser drawing the page and fetching
the new images). Where the time went before the fix: the script itself took 30-110 ms, but Streamlit runs
``gc.collect(2)`` after every rerun (``runner.postScriptGC``) and the ~480,000 objects torch, open_clip, plotly
and pandas leave made that a 270-650 ms stop holding the GIL before "script finished" reached the browser
(see the "full garbage collection" line: the dashboard now freezes that heap once, ``widgets.settle_heap``).
Images are 400 px JPEGs (~34 kB each, cached per setting); the page rerun is an ``st.fragment``.

    python benchmarks/bench_dashboard.py                 # demo run (shipped weights; else random weights)
    python benchmarks/bench_dashboard.py --browser       # also time it in headless chromium (Playwright)

Writes into ``$SURGERY_CACHE`` like the app itself (the demo scenes and the run store).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
APP = str(REPO / "dashboard" / "app.py")


def demo_config():
    from surgery_core.demo.model import DEMO_WEIGHTS
    from surgery_core.files import cache_dir
    from surgery_core.run.config import ModelConfig, RunConfig

    if DEMO_WEIGHTS.is_file():
        return RunConfig(), "shipped demo weights"
    import torch
    from safetensors.torch import save_file

    from surgery_core.model.loading import load_model

    ckpt = cache_dir() / "bench" / "random-demo.safetensors"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    state = load_model("Demo-ViT-32", random_weights=True).model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt))
    return RunConfig(model=ModelConfig(checkpoint=str(ckpt))), "RANDOM weights (demo weights not installed yet)"


def summary(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, round(f * (len(xs) - 1)))] * 1e3  # noqa: E731  (nearest rank)
    return (f"{name:<44} n={len(xs):>3}  median {statistics.median(xs) * 1e3:7.1f} ms  "
            f"p95 {q(0.95):7.1f} ms  max {xs[-1] * 1e3:7.1f} ms")


def gc_cost() -> str:
    """What one full garbage collection (Streamlit's post-rerun ``gc.collect(2)``) costs in a process holding the
    dashboard's imports and an open run, before and after ``widgets.settle_heap`` (when this tree has it)."""
    import gc

    from dashboard import charts, sidebar, state, widgets  # noqa: F401  (what the app imports)

    def once() -> float:
        t0 = time.perf_counter()
        gc.collect(2)
        return (time.perf_counter() - t0) * 1e3

    before = statistics.median(once() for _ in range(3))
    n = len(gc.get_objects())
    if not hasattr(widgets, "settle_heap"):
        return f"full garbage collection: {before:.0f} ms over {n} tracked objects (no settle_heap in this tree)"
    widgets.settle_heap()
    after = statistics.median(once() for _ in range(3))
    return (f"full garbage collection: {before:.0f} ms over {n} tracked objects; after settle_heap "
            f"{after:.1f} ms ({len(gc.get_objects())} objects left to scan)")


def bench_apptest(repeats: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    percentiles = [float(o.removeprefix("p")) for o in at.select_slider(key="p").options]
    ious = [float(o) for o in at.select_slider(key="iou").options]
    out: dict[str, list[float]] = {}

    def timed(name: str, change) -> None:
        before = [im.proto.imgs[0].url for im in at.image]
        t0 = time.perf_counter()
        change().run()
        out.setdefault(name, []).append(time.perf_counter() - t0)
        assert not at.exception, at.exception
        assert len(at.image) == len(before)

    for rnd in ("first", "cached"):
        for k in range(repeats):
            timed(f"percentile ({rnd})", lambda: at.select_slider(key="p").set_value(percentiles[k % len(percentiles)]))
            timed(f"IoU ({rnd})", lambda: at.select_slider(key="iou").set_value(ious[k % len(ious)]))
            timed(f"opacity ({rnd})", lambda: at.slider(key="alpha").set_value(round(0.05 * (k % 21), 2)))
        # next sample: new images the first time, cached the second (same walk from the same start)
        at.selectbox(key="sample").set_value(at.selectbox(key="sample").options[0]).run()
        for _ in range(repeats):
            timed(f"next sample ({rnd})", lambda: at.button(key="next").click())
    return out


#: Arrival time (performance.now) of every websocket message, logged in the page.
WS_LOG = """window.__ws = []; const _WS = window.WebSocket;
window.WebSocket = function (...a) { const w = new _WS(...a);
  w.addEventListener('message', () => window.__ws.push(performance.now())); return w; };
window.WebSocket.prototype = _WS.prototype; Object.assign(window.WebSocket, _WS);"""


def bench_browser(repeats: int, env: dict[str, str]) -> dict[str, list[float]]:
    """In headless chromium: click -> URL updated (the last thing a rerun does) -> new images loaded; and the
    server's part: click -> the rerun's last websocket message (as the page's message handler saw it).

    "protocol" and "next sample" are clicks; "percentile" is a key press on the slider, which Streamlit sends
    after its slider debounce (about 200 ms of the figure is that debounce)."""
    import re

    from playwright.sync_api import sync_playwright

    from dashboard import serving

    proc, base = serving.start({**os.environ, **env})
    idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    out: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            pg = serving.open_page(p, 1500)
            pg.add_init_script(WS_LOG)
            pg.goto(f"{base}/compare")
            pg.wait_for_selector(idle)
            pg.wait_for_url(re.compile("sample="))

            def timed(name: str, act) -> None:
                pg.wait_for_selector(idle)
                url = pg.url
                pg.evaluate("window.__ws = []")
                t0 = time.perf_counter()
                p0 = pg.evaluate("performance.now()")
                act()
                pg.wait_for_url(lambda u: u != url)
                pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMain] img')]"
                                     ".every(i => i.complete && i.naturalWidth > 0)")
                out.setdefault(name, []).append(time.perf_counter() - t0)
                pg.wait_for_selector(idle)  # the rerun's last message ("script finished") is in
                last = pg.evaluate("Math.max(0, ...window.__ws)")
                out.setdefault(name.replace("browser", "  server part of"), []).append(max(0.0, last - p0) / 1e3)

            slider = pg.locator('.st-key-p input[type="range"] >> visible=true').first
            proto = "present"  # the run's protocol when the page opens
            for rnd in ("first", "cached"):
                for k in range(repeats):
                    slider.focus()
                    timed(f"browser percentile ({rnd})",
                          lambda: slider.press("ArrowLeft" if (k // 4) % 2 == 0 else "ArrowRight"))
                    proto = "open" if proto == "present" else "present"  # the one not selected now
                    timed(f"browser protocol ({rnd})", lambda: pg.locator(
                        ".st-key-proto button >> visible=true", has_text=proto).first.click())
                nxt = pg.locator(".st-key-next button >> visible=true").first
                for _ in range(repeats):
                    timed(f"browser next sample ({rnd})", nxt.click)
                prv = pg.locator(".st-key-prev button >> visible=true").first
                for _ in range(repeats):
                    timed("browser previous (back over seen samples)", prv.click)
            pg.context.browser.close()
    finally:
        serving.stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--browser", action="store_true", help="also time the percentile slider in chromium")
    args = ap.parse_args()

    from surgery_core.run.facade import Run

    cfg, weights = demo_config()
    os.environ["SURGERY_DASHBOARD_CONFIG"] = cfg.model_dump_json()
    t0 = time.perf_counter()
    run = Run.open(cfg)
    run.boxes
    print(f"run {cfg.run_hash}: {len(run.grids.rows)} demo images, {weights}; opened and boxes cut in "
          f"{time.perf_counter() - t0:.1f} s (before timing)")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(gc_cost())  # in this process; the server settles its own heap on its first page
    results = bench_apptest(args.repeats)
    if args.browser:
        results |= bench_browser(args.repeats, {"SURGERY_DASHBOARD_CONFIG": cfg.model_dump_json()})
    print("control change -> redrawn Compare page (AppTest: full script rerun; browser: fragment rerun):")
    for name, xs in results.items():
        print("  " + summary(name, xs))
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(json.dumps({k: statistics.median(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
