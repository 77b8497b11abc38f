"""Dashboard responsiveness on the demo run (300 images, every registered method), cached: what a user feels.

In headless chromium (``--browser``) on the real app (``streamlit run dashboard/app.py``), one session walks the
app as a user would and every step is timed from the action (click, key press) to the changed content on screen:
the first animation frame from which the main area (its text, tables, images and their loaded state) stayed as
it was once the app had gone quiet, not a status widget, and not the end of the script (the "idle" column: the
last script run of the step ended). Steps: the first visit of every page, page switches over every page, every
control of Compare, Per-class AP, Threshold sweep, Heatmap quality and Explore moved back and forth
``--repeats`` times, the HTML report built on the Run page, and the five real DIOR samples opened as a run from
the Run settings form (their grids computed: the server works on a copy of the prepared store, so they are never
there before). One table: n, median, p95 (nearest rank) and max per step, against the targets (1 s per
interaction at p95, 2 s per first visit, 3 s to open the samples and to build the report).

Without ``--browser`` (also run before it): ``streamlit.testing.v1.AppTest`` reruns of the whole Compare script
per control (Python time only, an upper bound of what the server spends; no drawing).

The run's products (grids, boxes, AP tables, sweep, quality, CorLoc, per-pair quality) are computed before timing
starts, in ``$SURGERY_CACHE`` (default ``~/.cache/surgery``; set it to a temporary folder: the first preparation takes
a few minutes). Prints the machine and the load average before and after: figures on a shared machine are noisy.

    .venv/bin/python benchmarks/bench_dashboard.py --browser                 # the full walk, 5 repetitions
    .venv/bin/python benchmarks/bench_dashboard.py --browser --short         # 1 repetition, 40 images (a check)
    .venv/bin/python benchmarks/bench_dashboard.py                           # AppTest only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
APP = str(REPO / "dashboard" / "app.py")

from _machine import load_line, machine_line  # noqa: E402

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

    def panels() -> int:  # the image and one picture per method (the colour bar is drawn only at opacity > 0)
        return len(at.image) - (at.slider(key="alpha").value > 0)

    def timed(name: str, change) -> None:
        before = panels()
        t0 = time.perf_counter()
        change().run()
        out.setdefault(name, []).append(time.perf_counter() - t0)
        assert not at.exception, at.exception
        assert panels() == before, f"{name}: {panels()} pictures after the change, {before} before"

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


#: Installed in every page before the app loads: a log of what the main area shows, one entry per animation frame
#: in which anything under the app changed (or an image finished loading): (time, hash of the main area's text and
#: of its images' addresses with their loaded state); and the log of the script-state attribute (running / not).
#: "Changed content on screen" is the first frame from which the main area stayed as it was when the app went quiet.
WATCH_JS = r"""(() => {
  const hash = s => { let h = 5381; for (let i = 0; i < s.length; i++) h = (Math.imul(h, 33) ^ s.charCodeAt(i)) | 0;
                      return h; };
  window.__sig = () => {
    const m = document.querySelector('[data-testid="stMain"]');
    if (!m) return 0;
    let s = m.textContent;
    for (const i of m.querySelectorAll('img'))  // its address, loaded or not, and its drawn width (the layout)
      s += '|' + i.src + (i.complete && i.naturalWidth > 0 ? '' : '~') + Math.round(i.getBoundingClientRect().width);
    for (const c of m.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stDataFrameResizable"]'))
      s += '|df' + (c.getAttribute('data-sig') || '');
    return hash(s);
  };
  window.__log = []; window.__state = [];
  let pending = false;
  const note = () => { if (pending) return; pending = true;
    requestAnimationFrame(() => { pending = false; window.__log.push([performance.now(), window.__sig()]); }); };
  const start = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) { setTimeout(start, 20); return; }
    new MutationObserver(note).observe(app, {subtree: true, childList: true, characterData: true,
                                            attributes: true, attributeFilter: ['src', 'class']});
    new MutationObserver(() => window.__state.push([performance.now(), app.getAttribute('data-test-script-state')]))
      .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  };
  document.addEventListener('load', e => { if (e.target.tagName === 'IMG') note(); }, true);
  // and a sample every 50 ms, should a change reach the screen without a mutation under the app (a canvas)
  setInterval(() => { const l = window.__log, h = window.__sig();
                      if (!l.length || l[l.length - 1][1] !== h) l.push([performance.now(), h]); }, 50);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();"""

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
QUIET_S = 0.5  # the app counts as settled once it is idle, every image is loaded and nothing changed for this long
START_S = 15.0  # how long a step waits for its script run to start before it may count as "did not change"


class Browser:
    """One headless chromium page on the app, timing interactions from the action to the changed content."""

    def __init__(self, pg, base: str, timeout_s: float = 120.0):
        self.pg, self.base, self.timeout_s = pg, base, timeout_s
        self.out: dict[str, list[float]] = {}
        self.idle: dict[str, list[float]] = {}
        self.problems: list[str] = []

    def settled(self, since_ms: float, before: int | None = None) -> int | None:
        """The main area's signature once the app is settled (else None), read in the same task as the check: a
        change landing between the check and a later read would otherwise be missing from the log; a signature
        the log does not end with is logged, and not settled. With ``before`` (the signature before an action
        that reruns the script): not settled while the main area still shows ``before`` and no script run has
        started since the action, for up to :data:`START_S` (a page switch's script may start more than
        :data:`QUIET_S` after the click on a busy machine: the old page was then taken for the result, and the
        step reported as "did not change")."""
        return self.pg.evaluate("""([since, before]) => {
          const app = document.querySelector('[data-testid="stApp"]');
          if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return null;
          if (!document.querySelector('[data-testid="stMain"] [data-testid="stElementContainer"]')) return null;
          if (![...document.querySelectorAll('[data-testid="stMain"] img')].every(i => i.complete)) return null;
          if (document.querySelector('[data-testid="stMain"] [data-testid="stSpinner"]')) return null;
          const h = window.__sig(), log = window.__log;
          if (!log.length || log[log.length - 1][1] !== h) { log.push([performance.now(), h]); return null; }
          if (before !== null && h === before && !window.__state.some(e => e[1] === 'running')
              && performance.now() - since < %d) return null;
          const last = Math.max(since, ...log.map(e => e[0]), ...window.__state.map(e => e[0]));
          return performance.now() - last > %d ? h : null;
        }""" % (START_S * 1e3, QUIET_S * 1e3), [since_ms, before])

    def timed(self, name: str, act, expect_change: bool = True) -> float | None:
        """Run ``act`` (a click, a key press), wait until the app is settled, and record the time from the action to
        the first frame showing the main area as it finally is; None (and a problem noted) when nothing changed."""
        pg = self.pg
        pg.wait_for_selector(IDLE)
        before = pg.evaluate("window.__sig()")
        pg.evaluate("window.__log = []; window.__state = []")
        p0 = pg.evaluate("performance.now()")
        act()
        deadline = time.monotonic() + self.timeout_s
        time.sleep(0.05)
        while (final := self.settled(p0, before if expect_change else None)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: the app did not settle within {self.timeout_s:g} s")
            time.sleep(0.05)
        log, states = pg.evaluate("[window.__log, window.__state]")
        t_final = None
        for t, h in reversed(log):
            if h != final:
                break
            t_final = t
        errors = pg.locator('[data-testid="stException"]')
        if errors.count():
            self.problems.append(f"{name}: exception on the page: {errors.first.inner_text()[:200]}")
        if expect_change and (final == before or t_final is None):
            self.problems.append(f"{name}: the main area did not change")
            return None
        took = (t_final - p0) / 1e3 if t_final is not None else 0.0
        self.out.setdefault(name, []).append(took)
        ends = [t for t, s in states if s == "notRunning"]
        self.idle.setdefault(name, []).append(((max(ends) if ends else t_final or p0) - p0) / 1e3)
        return took

    def load(self, name: str, url: str) -> float:
        """Open ``url`` in the page (a new session): the time until the app first settled (wall clock)."""
        t0 = time.perf_counter()
        self.pg.goto(url)
        deadline = time.monotonic() + self.timeout_s
        while self.settled(0.0) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: the app did not settle within {self.timeout_s:g} s")
            time.sleep(0.05)
        took = time.perf_counter() - t0 - QUIET_S
        self.out.setdefault(name, []).append(took)
        self.idle.setdefault(name, []).append(took)
        return took

    # ---------------------------------------------------------------------------------------- actions
    def nav(self, title: str):
        return lambda: self.pg.get_by_role("link", name=title, exact=True).click()

    def visible(self, selector: str, **kw):
        return self.pg.locator(selector + " >> visible=true", **kw).first

    def press(self, key: str, arrow: str):
        """A key press on the slider ``key`` (Streamlit sends the value after its slider debounce): ``arrow``, or the
        other way when the slider is at that end."""
        s = self.visible(f'.st-key-{key} input[type="range"]')
        at = s.evaluate("e => [Number(e.value), Number(e.min), Number(e.max)]")
        if at[0] <= at[1] and arrow == "ArrowLeft":
            arrow = "ArrowRight"
        elif at[0] >= at[2] and arrow == "ArrowRight":
            arrow = "ArrowLeft"
        s.focus()
        return lambda: s.press(arrow)

    def choose(self, key: str, text: str):
        """Click the button of ``key`` (segmented control, pills, button) that reads ``text``."""
        return lambda: self.visible(f".st-key-{key} button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).click()

    def button(self, key: str):
        return lambda: self.visible(f".st-key-{key} button").click()

    def select(self, key: str, option: str):
        """Open the selectbox ``key`` (not timed) and return the click on ``option``."""
        box = self.visible(f".st-key-{key} input")
        wanted = self.pg.locator('[role="option"]', has_text=option)
        for _ in range(5):
            box.scroll_into_view_if_needed()
            box.click()
            try:
                wanted.first.wait_for(state="visible", timeout=3_000)
                break
            except Exception:  # noqa: BLE001 - playwright's TimeoutError: the list closed again
                self.pg.keyboard.press("Escape")
        return lambda: wanted.first.click()

    def options(self, key: str) -> list[str]:
        box = self.visible(f".st-key-{key} input")
        box.click()
        self.pg.locator('[role="option"]').first.wait_for(state="visible")
        texts = [t.strip() for t in self.pg.locator('[role="option"]').all_inner_texts()]
        self.pg.keyboard.press("Escape")
        return texts


#: Every page, in the order of the top navigation after Browse (the page a session opens on)
NAV = ["Compare", "Explore", "Per-class AP", "Threshold sweep", "Heatmap quality", "Run", "Runs", "Snapshots",
       "Browse"]


def active(b: Browser, key: str) -> str:
    """The selected option of segmented control ``key``."""
    return b.visible(f'.st-key-{key} button[aria-checked="true"]').inner_text().strip()


def other(options: list[str], now: str) -> str:
    return options[(options.index(now) + 1) % len(options)] if now in options else options[0]


def flip(b: Browser, name: str, key: str, options: list[str]) -> None:
    """Select the next option of segmented control ``key`` (timed)."""
    b.timed(name, b.choose(key, other(options, active(b, key))))


def toggle_pill(b: Browser, name: str, key: str, text: str) -> None:
    b.timed(name, b.choose(key, text))


def walk(b: Browser, repeats: int) -> None:
    """The session: first visits, page switches, every page's controls, the five real samples opened as a run and
    the HTML report built. Each control is moved ``repeats`` times (back and forth: every move changes the view)."""
    pg = b.pg
    b.load("app load: Browse, the run opened (wall clock)", b.base + "/")
    for title in NAV:
        b.timed(f"first visit: {title}", b.nav(title))
    for _ in range(repeats):
        for title in NAV:
            b.timed(f"page switch -> {title}", b.nav(title))
    arrows = lambda k: "ArrowLeft" if k % 2 == 0 else "ArrowRight"  # noqa: E731  (there and back)

    b.timed("page switch -> Compare", b.nav("Compare"))
    for k in range(repeats):
        b.timed("Compare: percentile", b.press("p", arrows(k)))
        b.timed("Compare: IoU", b.press("iou", arrows(k)))
        flip(b, "Compare: protocol", "proto", ["present", "open"])
        b.timed("Compare: opacity", b.press("alpha", arrows(k)))
        b.timed("Compare: next sample", b.button("next"))
        toggle_pill(b, "Compare: method on/off", "methods", "gem")
        b.timed("Compare: pictures per row", b.select("cols", "4" if k % 2 == 0 else "3"))
        now, shown = b.visible(".st-key-cls input").input_value(), b.options("cls")
        classes = [c for c in shown if c != now and "(absent)" not in c] or [c for c in shown if c != now]
        b.timed("Compare: class", b.select("cls", classes[0]))

    b.timed("page switch -> Per-class AP", b.nav("Per-class AP"))
    for k in range(repeats):
        flip(b, "Per-class AP: interpolation", "interp", ["VOC07 11-pt", "VOC all-pt", "COCO 101-pt"])
        flip(b, "Per-class AP: protocol", "proto", ["present", "open"])
        b.timed("Per-class AP: IoU", b.press("iou", arrows(k)))
        b.timed("Per-class AP: percentile", b.press("p", arrows(k)))
        flip(b, "Per-class AP: object size", "size", ["all", "small", "medium", "large"])
        toggle_pill(b, "Per-class AP: method on/off", "methods", "gem")

    b.timed("page switch -> Threshold sweep", b.nav("Threshold sweep"))
    for k in range(repeats):
        flip(b, "Threshold sweep: protocol", "proto", ["present", "open"])
        flip(b, "Threshold sweep: interpolation", "interp", ["VOC07 11-pt", "VOC all-pt"])
        b.timed("Threshold sweep: percentile", b.press("p", arrows(k)))
        b.timed("Threshold sweep: IoU", b.press("iou", arrows(k)))
        b.timed("Threshold sweep: class", b.select("sc", "airplane" if k % 2 == 0 else "all classes (mAP)"))

    b.timed("page switch -> Heatmap quality", b.nav("Heatmap quality"))
    for k in range(repeats):
        toggle_pill(b, "Heatmap quality: method on/off", "methods", "gem")

    b.timed("page switch -> Explore", b.nav("Explore"))
    phrases = b.visible(".st-key-xq input")
    for k in range(repeats):
        phrases.fill("airplane, ship" if k % 2 == 0 else "storage tank")
        b.timed("Explore: phrases (typed, Enter)", lambda: phrases.press("Enter"))
        flip(b, "Explore: colour scale", "xscale", ["min-max per map", "raw, per phrase"])
        b.timed("Explore: opacity", b.press("alpha", arrows(k)))
        toggle_pill(b, "Explore: method on/off", "methods", "gem")  # one method choice across pages

    b.timed("page switch -> Run", b.nav("Run"))
    b.timed("Run: build the HTML report (first build)", b.button("report_build"))

    # the five real DIOR samples, opened from the Run settings form as a new user would (their grids computed)
    pg.locator('[data-testid="stSidebar"] summary', has_text="Run settings").click()
    b.timed("open the 5 real DIOR samples as a run (first)", select_then_open(b, "f_kind", "5 real DIOR samples"))
    b.timed("back to the default run", lambda: pg.get_by_role("button", name="Back to the default run").click())


def select_then_open(b: Browser, key: str, option: str):
    """Pick ``option`` in the form's selectbox ``key`` (not timed); the click on Open run (timed)."""
    b.select(key, option)()
    return lambda: b.pg.get_by_role("button", name="Open run").click()


def prepare(limit: int | None):
    """The demo run's configuration (``limit``: its first scenes only), every product computed into the store."""
    from surgery_core.run.config import DataConfig
    from surgery_core.run.facade import Run

    cfg, weights = demo_config()
    if limit:
        cfg = cfg.model_copy(update={"data": DataConfig(limit=limit)})
    t0 = time.perf_counter()
    run = Run.open(cfg)
    run.boxes, run.ap_tables(), run.sweep(), run.quality(), run.corloc(), run.ap_by_size()
    for m in cfg.methods:  # the per-pair quality the Heatmap quality and Browse pages read (kept in the run folder)
        run.pair_quality(m)
    print(f"run {cfg.run_hash}: {len(run.grids.rows)} demo images, {len(cfg.methods)} methods, {weights}; its "
          f"products computed or read in {time.perf_counter() - t0:.1f} s (before timing)")
    return cfg


TARGETS = (("first visit", 2.0), ("app load", None), ("open the 5 real", 3.0), ("build the HTML report", 3.0))


def target(name: str) -> float | None:
    return next((t for k, t in TARGETS if k in name), 1.0)


def table(b: Browser) -> list[str]:
    lines = [f"{'step (action -> changed content on screen)':<52} {'n':>3} {'median':>7} {'p95':>7} {'max':>7} "
             f"{'idle p95':>8}  target"]
    for name, xs in b.out.items():
        xs, idle = sorted(xs), sorted(b.idle[name])
        q = lambda v: v[min(len(v) - 1, round(0.95 * (len(v) - 1)))]  # noqa: E731  (nearest rank)
        goal = target(name)
        verdict = "" if goal is None else f"{goal:g} s {'ok' if q(xs) <= goal else 'OVER'}"
        lines.append(f"{name:<52} {len(xs):>3} {statistics.median(xs):6.2f}s {q(xs):6.2f}s {xs[-1]:6.2f}s "
                     f"{q(idle):7.2f}s  {verdict}")
    return lines


def bench_browser(cfg, repeats: int) -> Browser:
    """The walk (:func:`walk`) on a server working on a copy of the prepared cache and store."""
    from playwright.sync_api import sync_playwright

    from dashboard import serving
    from surgery_core.files import cache_dir

    work = Path(tempfile.mkdtemp(prefix="surgery-bench-dashboard-"))
    try:
        shutil.copytree(cache_dir(), work / "cache", symlinks=True)
        store = Path(os.environ.get("SURGERY_STORE") or cache_dir() / "store")
        if not (work / "cache" / "store").is_dir() or store != cache_dir() / "store":
            shutil.copytree(store, work / "store", symlinks=True, dirs_exist_ok=True)
            store = work / "store"
        else:
            store = work / "cache" / "store"
        env = {**os.environ, "SURGERY_CACHE": str(work / "cache"), "SURGERY_STORE": str(store),
               "SURGERY_DASHBOARD_CONFIG": cfg.model_dump_json()}
        proc, base = serving.start(env, work / "server.log")
        try:
            with sync_playwright() as p:
                pg = serving.open_page(p, 1280, 1000, timeout_ms=60_000)
                pg.add_init_script(WATCH_JS)
                b = Browser(pg, base)
                try:
                    walk(b, repeats)
                except Exception as exc:  # noqa: BLE001 - the table of what was measured is still printed
                    b.problems.append(f"the walk stopped: {type(exc).__name__}: {str(exc)[:300]}")
                pg.context.browser.close()
        finally:
            serving.stop(proc)
        if serving.OUTSIDE_REQUESTS:
            b.problems.append(f"requests off this machine blocked: {sorted(set(serving.OUTSIDE_REQUESTS))[:5]}")
        return b
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="moves per control (default 5; 1 with --short)")
    ap.add_argument("--browser", action="store_true", help="the walk in headless chromium on `streamlit run`")
    ap.add_argument("--short", action="store_true", help="a check that the benchmark runs: 1 repetition, the "
                                                        "first 40 demo images (figures not comparable)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.short else 5)

    print(machine_line())
    cfg = prepare(40 if args.short else None)
    os.environ["SURGERY_DASHBOARD_CONFIG"] = cfg.model_dump_json()
    print(gc_cost())  # in this process; the server settles its own heap on its first page
    results = bench_apptest(repeats)
    print("AppTest: control change -> Compare script rerun (Python only, whole script):")
    for name, xs in results.items():
        print("  " + summary(name, xs))
    out = {"apptest_median_s": {k: statistics.median(v) for k, v in results.items()}}
    if args.browser:
        print(load_line())
        b = bench_browser(cfg, repeats)
        print(f"Browser (headless chromium at 1280 px, `streamlit run`; {repeats} moves per control; run "
              f"{cfg.run_hash}):")
        for line in table(b):
            print("  " + line)
        for p in b.problems:
            print("  PROBLEM: " + p)
        out["browser_s"] = {k: {"median": statistics.median(v), "max": max(v), "n": len(v)} for k, v in b.out.items()}
        out["problems"] = b.problems
    print(load_line())
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
