"""Explore page responsiveness: time from typing a new phrase (Enter in the Phrases box) to the maps redrawn,
in headless chromium driving the real app (``streamlit run``), on this machine.

"Redrawn" = the figure on screen carries the new phrase (its hover text names it) and the script has finished.
The image side (forward pass) is computed once before timing, so each new phrase costs the text side only:
encoding the phrase through the 85-template prompt ensemble (once per phrase and model), the similarity of the
cached tokens, the overlays and the transfer. A phrase typed a second time (text feature cached) is timed too.

Scenarios (``--scenarios``; each starts its own server with its own default run of a few demo scenes):
  demo224   the shipped demo model (Demo-ViT-32, 224 px, 7x7 grid)                     target < 1 s
  b32_224   ViT-B/32 with RANDOM weights at 224 px (7x7), one pass                      reported
  b32_448w  ViT-B/32 with RANDOM weights at 448 px, windows 224 px at stride 96 (4x4)   reported
The ViT-B/32 runs use open_clip's (seeded) random initialisation, written to a checkpoint file in the temporary
cache first: the app refuses an architecture without a checkpoint (maps mean nothing; only the cost is of
interest here).
Each scenario also prints the library's own figures (``surgery_core.run.explore``: image side, text side with
a new and with a cached phrase) measured in this process, so the browser's share is visible.

    .venv/bin/python benchmarks/bench_explore.py                      # all three scenarios, 6 new phrases each
    .venv/bin/python benchmarks/bench_explore.py --scenarios demo224 --repeats 10

Writes only into a temporary cache and run store (deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RANDOM_B32 = {"arch": "ViT-B-32", "checkpoint": "random"}  # "random": see with_checkpoint
SCENARIOS = {
    "demo224": ({}, {}),
    "b32_224": (RANDOM_B32, {}),
    "b32_448w": (RANDOM_B32, {"xsize": "448", "xwin": "224", "xstride": "96"}),
}
PHRASES = ["solar panel", "swimming pool", "roundabout", "red roof", "parking lot", "river bank", "green field",
           "white boat", "runway", "oil tank", "football pitch", "container yard", "wind turbine", "bare soil"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def summary(name: str, xs: list[float]) -> str:
    return (f"{name:<52} n={len(xs):>2}  median {statistics.median(xs) * 1e3:8.1f} ms  "
            f"min {min(xs) * 1e3:8.1f} ms  max {max(xs) * 1e3:8.1f} ms")


def with_checkpoint(model: dict, root: Path) -> dict:
    """``model`` with ``checkpoint: "random"`` replaced by a file of the architecture's seeded random weights."""
    if model.get("checkpoint") != "random":
        return model
    import torch

    from surgery_core.model.loading import load_model

    path = root / "cache" / f"{model['arch']}-random-weights.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(load_model(model["arch"], random_weights=True).model.state_dict(), path)
    return {**model, "checkpoint": str(path)}


def library_figures(model: dict, query: dict, repeats: int) -> dict[str, list[float]]:
    """The same work in this process, without the app: image side once, text side per new / cached phrase."""
    from surgery_core.data.images import read_image
    from surgery_core.model.methods import METHODS
    from surgery_core.run import explore
    from surgery_core.run.config import ModelConfig, RunConfig
    from surgery_core.run.engine import SAMPLES_ROOT, resolve_model

    loaded = resolve_model(RunConfig(model=ModelConfig(**model)))
    image = read_image(sorted(SAMPLES_ROOT.rglob("*.jpg"))[0])
    res = explore.Resolution.check(int(query.get("xsize", loaded.image_size)), int(query.get("xwin", 0)) or None,
                                   int(query.get("xstride", 0)) or None, loaded.patch_size)
    out: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    tokens = explore.image_tokens(loaded, image, res)
    out[f"library image side ({res.window_count} window{'s' * (res.window_count > 1)})"] = [time.perf_counter() - t0]
    explore.phrase_maps(loaded, tokens, ["warm up"], list(METHODS))  # the empty-string feature, once
    for phrase in PHRASES[-repeats:]:
        t0 = time.perf_counter()
        explore.phrase_maps(loaded, tokens, [phrase], list(METHODS))
        out.setdefault("library text side, new phrase", []).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        explore.phrase_maps(loaded, tokens, [phrase], list(METHODS))
        out.setdefault("library text side, cached phrase", []).append(time.perf_counter() - t0)
    return out


def browser_figures(model: dict, query: dict, repeats: int, root: Path) -> tuple[dict[str, list[float]], str]:
    from urllib.parse import urlencode

    from playwright.sync_api import sync_playwright

    from dashboard import serving
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig

    cfg = RunConfig(data=DataConfig(limit=4), model=ModelConfig(**model))
    env = {**os.environ, "SURGERY_CACHE": str(root / "cache"), "SURGERY_STORE": str(root / "store"),
           "SURGERY_DASHBOARD_CONFIG": cfg.model_dump_json(), "PYTHONPATH": str(REPO)}
    proc, base = serving.start(env, root / "server.log", timeout=300)
    out: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            pg = serving.open_page(p, 1280)
            pg.goto(f"{base}/explore?" + urlencode({**query, "xq": "warm up"}))  # opens the run, image side once
            pg.wait_for_selector(IDLE)
            box = pg.locator(".st-key-xq input")

            def type_phrase(name: str, phrase: str) -> None:
                pg.wait_for_selector(IDLE)
                box.fill(phrase)
                t0 = time.perf_counter()
                box.press("Enter")
                pg.wait_for_function(
                    "p => { const el = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');"
                    " return el && el.data && el.data.some(t => (t.hovertemplate || '').includes(p)); }",
                    arg=phrase)
                pg.wait_for_selector(IDLE)
                out.setdefault(name, []).append(time.perf_counter() - t0)
                errors = pg.locator('[data-testid="stException"]')
                assert errors.count() == 0, errors.first.inner_text()

            type_phrase("warm-up", "first phrase")
            for phrase in PHRASES[:repeats]:
                type_phrase("browser: new phrase -> maps redrawn", phrase)
            for phrase in PHRASES[:repeats]:
                type_phrase("browser: phrase seen before -> maps redrawn", phrase)
            main = pg.locator('[data-testid="stMain"]').inner_text()
            how = next((line for line in main.splitlines() if line.startswith("model ")), "")
            pg.context.browser.close()
    finally:
        serving.stop(proc)
    out.pop("warm-up", None)
    return out, how


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    args = ap.parse_args()
    medians = {}
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    for name in args.scenarios.split(","):
        model, query = SCENARIOS[name]
        n = args.repeats if not model else min(args.repeats, 3)  # a ViT-B/32 phrase costs seconds on 2 cores
        with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
            model = with_checkpoint(model, Path(tmp))
            lib = library_figures(model, query, n)
            web, how = browser_figures(model, query, n, Path(tmp))
        print(f"\n[{name}] {how}")
        for k, xs in {**lib, **web}.items():
            print("  " + summary(k, xs))
            medians[f"{name}: {k}"] = round(statistics.median(xs), 4)
    print(f"\nload average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(json.dumps(medians))


if __name__ == "__main__":
    from _machine import load_line, machine_line  # benchmarks/ is sys.path[0] when this file runs

    print(machine_line(), flush=True)
    main()
    print(load_line())
