"""Downloads in a real browser 1280 px wide (``streamlit run`` + headless Debian chromium through Playwright), one
session across pages: Per-class AP (the boxes zip, a chart's PNG from plotly's toolbar), Compare (one panel and
the cross-method figure as PNGs), Explore (the phrase figure's toolbar), Quality (every chart has its toolbar).

The app runs a small run of its own (12 demo scenes, three methods) so that the session stays short. With
``SURGERY_SCREENSHOTS=DIR`` each page's screenshot is kept there."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.dashboard.test_dashboard_browser import count, one, settle

from dashboard import serving
from dashboard.serving import CHROMIUM

pytestmark = pytest.mark.browser

WIDTH = 1280
METHODS = ("standard", "vv_mixed", "gem")
CHARTS = '[data-testid="stPlotlyChart"]'
CAMERA = '.modebar-btn[data-title^="Download plot as a"]'


@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    """The app on its own store and run, computed before the browser opens."""
    if not CHROMIUM.is_file():
        pytest.skip("headless browser test needs Debian chromium at /usr/bin/chromium (apt-get install -y chromium)")
    from tests.conftest import environ

    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run

    base = tmp_path_factory.mktemp("export-app")
    env = {"SURGERY_CACHE": str(base / "cache"), "SURGERY_STORE": str(base / "store")}
    cfg = RunConfig(data=DataConfig(limit=12), methods=METHODS)
    with environ(env):
        run = Run.open(cfg)
        run.ap_tables(), run.sweep(), run.quality()
    env["SURGERY_DASHBOARD_CONFIG"] = cfg.model_dump_json()
    proc, url = serving.start({**os.environ, **env}, base / "server.log", timeout=90)
    try:
        yield url, run
    finally:
        serving.stop(proc)


@pytest.fixture(scope="module")
def page(small_app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        pg = serving.open_page(p, WIDTH, 1000, timeout_ms=90_000)
        yield pg
        pg.context.browser.close()


def shot(pg, name: str) -> None:
    where = os.environ.get("SURGERY_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def download(pg, click) -> tuple[str, bytes]:
    with pg.expect_download(timeout=90_000) as info:
        click()
    d = info.value
    where = os.environ.get("SURGERY_SCREENSHOTS")
    if where:  # kept to be looked at, beside the screenshots
        d.save_as(str(Path(where) / f"download_{d.suggested_filename}"))
    return d.suggested_filename, Path(d.path()).read_bytes()


def png_size(data: bytes) -> tuple[int, int]:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "not a PNG"
    return img.shape[1], img.shape[0]


def test_downloads_across_pages(small_app, page):
    url, run = small_app
    methods = ",".join(METHODS)

    # Per-class AP: the boxes of the methods shown as one zip (the files of `surgery export boxes`)
    page.goto(f"{url}/ap?methods={methods}&proto=open")
    settle(page)
    page.wait_for_url(re.compile(r"[?&]page=ap(&|$)"))
    shot(page, "1_ap")
    name, data = download(page, lambda: page.get_by_role("button", name="Download the boxes (COCO + CSV, zip)").click())
    assert name == f"boxes_{run.run_hash}_open_p90.zip"
    z = zipfile.ZipFile(io.BytesIO(data))
    assert set(z.namelist()) == {"ground_truth.json", "manifest.json"} | {
        f"{m}.open.p90.{ext}" for m in METHODS for ext in ("json", "csv")}
    assert json.loads(z.read("manifest.json"))["run"]["run_hash"] == run.run_hash
    # every chart has plotly's toolbar; its camera saves the chart as drawn, PNG at 2x
    assert count(page, CHARTS, 1, at_least=True) >= 1
    assert page.locator(f"{CHARTS} {CAMERA}").count() == page.locator(CHARTS).count()
    chart = page.locator(CHARTS).first
    chart.hover()
    name, data = download(page, lambda: chart.locator(CAMERA).click())
    w, _ = png_size(data)
    assert name == f"pr-{run.run_hash}.png" and w >= 2 * chart.bounding_box()["width"] - 2

    # Compare: one panel as drawn, then the cross-method figure
    page.goto(f"{url}/compare?methods={methods}&cols=4")
    settle(page)
    shot(page, "2_compare")
    panel = one(page, ".st-key-png_vv_mixed button")
    name, data = download(page, lambda: panel.click())
    assert name.endswith("_vv_mixed_present_p90.png")
    w, h = png_size(data)
    assert w > 400 and h > 400  # the 400 px picture, its colour bar beside it, the title above
    name, data = download(page, lambda: one(page, ".st-key-png_compare button").click())
    assert name.endswith("_present_p90_compare.png")
    fw, _ = png_size(data)
    assert fw > w  # the image and the three methods side by side
    name, _ = download(page, lambda: one(page, ".st-key-png_image button").click())
    assert name.endswith("_image.png")

    # Explore: the phrase figure keeps its toolbar and its title names the phrase
    page.goto(f"{url}/explore?methods={methods}&xq=airplane")
    settle(page)
    page.locator(f"{CHARTS} .js-plotly-plot").first.wait_for()
    shot(page, "3_explore")
    fig = page.locator(CHARTS).first
    assert "airplane" in fig.locator(".gtitle").text_content()
    fig.hover()
    name, data = download(page, lambda: fig.locator(CAMERA).click())
    assert name.startswith("explore-") and "airplane" in name and png_size(data)[0] > 1000

    # Quality: every chart with its toolbar
    page.goto(f"{url}/quality?methods={methods}")
    settle(page)
    shot(page, "4_quality")
    n = count(page, CHARTS, 2, at_least=True)
    assert n >= 2 and page.locator(f"{CHARTS} {CAMERA}").count() == n
