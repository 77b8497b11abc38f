"""The Explore page in a real browser (``streamlit run`` + headless Debian chromium through Playwright): upload an
image, type a phrase, see one map per method, no exception; a hostile upload is refused and leaves the maps."""

from __future__ import annotations

import re

import pytest
from tests.dashboard.test_dashboard_browser import page, server, settle  # noqa: F401  (fixtures)
from tests.run.test_explore import encode, hostile, scene

from surgery_core.model.methods import METHODS

pytestmark = pytest.mark.browser

MAPS = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def map_panels(pg) -> list[str]:
    """Subplot titles of every phrase figure on screen (one per method and phrase)."""
    return [t.strip() for t in pg.locator(f"{MAPS} .infolayer .annotation-text").all_text_contents()]


def test_upload_type_a_phrase_and_see_every_method(server, page, test_run):  # noqa: F811
    page.goto(f"{server}/explore?xsrc=upload&methods={','.join(METHODS)}")
    settle(page)
    page.wait_for_url(re.compile(r"[?&]page=explore(&|$)"))
    page.locator('.st-key-x_upload input[type="file"]').set_input_files(
        files=[{"name": "field.png", "mimeType": "image/png", "buffer": encode(scene(480, 640, seed=5), ".png")}])
    page.get_by_text("uploaded, kept in memory only").wait_for()
    settle(page)
    box = page.locator('.st-key-xq input')
    box.fill("solar panel")
    box.press("Enter")
    page.wait_for_url(re.compile(r"[?&]xq=solar\+panel(&|$)|[?&]xq=solar%20panel(&|$)"))
    settle(page)
    page.locator(MAPS).first.wait_for()
    assert map_panels(page) == list(METHODS)
    traces = page.locator(MAPS).first.evaluate("el => el.data.map(t => t.type)")
    assert traces.count("image") == len(METHODS) and traces.count("heatmap") == len(METHODS)  # one map each
    assert page.locator(f"{MAPS} .colorbar").count() == 1  # one colour scale for the phrase
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "1 phrase: single-text feature surgery" in main and "model Demo-ViT-32" in main

    data, words = hostile()["cut.jpg"]
    page.locator('.st-key-x_upload input[type="file"]').set_input_files(
        files=[{"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": data}])
    page.get_by_text("Upload refused").wait_for()
    settle(page)
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Upload refused").inner_text()
    assert "cut.jpg" in alert and words in alert and "field.png" in alert
    assert map_panels(page) == list(METHODS)  # the maps of the last good image stay
