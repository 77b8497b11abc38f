"""The dashboard in a real browser: ``streamlit run dashboard/app.py`` on a free localhost port, driven by
headless Debian chromium through Playwright. Fails on any exception the app shows
(``[data-testid="stException"]``). Skipped only when /usr/bin/chromium is absent (CI installs it)."""

from __future__ import annotations

import os
import re
import time

import pytest
from tests.dashboard.test_dashboard import PAGES

from dashboard import serving
from dashboard.serving import CHROMIUM, CHROMIUM_ARGS
from surgery_core.model.methods import SEED_METHODS  # what Compare shows by default

pytestmark = pytest.mark.browser

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# something the script drew: a page just loaded reads "notRunning" before its first run has started
DRAWN = '[data-testid="stMain"] [data-testid="stElementContainer"]'


@pytest.fixture(scope="module")
def server(dashboard_env, tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.skip("headless browser test needs Debian chromium at /usr/bin/chromium (apt-get install -y chromium)")
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    try:
        proc, url = serving.start({**os.environ, **dashboard_env}, log, timeout=90)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        serving.stop(proc)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = serving.new_page(browser, 1500, 1100, timeout_ms=90_000)  # nothing beyond this machine
        yield pg
        browser.close()


def settle(pg) -> None:
    """Wait until the script (and any fragment rerun) has finished, then check for exceptions."""
    pg.wait_for_selector(DRAWN, state="attached")
    pg.wait_for_selector(IDLE)
    time.sleep(0.4)
    pg.wait_for_selector(IDLE)
    errors = pg.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def count(pg, selector: str, n: int, at_least: bool = False) -> int:
    """The number of elements matching ``selector`` once it is ``n`` (or at least ``n``), waiting up to 30 s for
    a rerun to finish drawing; the last count otherwise."""
    loc = pg.locator(selector)
    deadline = time.monotonic() + 30
    while (loc.count() < n if at_least else loc.count() != n) and time.monotonic() < deadline:
        time.sleep(0.2)
    return loc.count()


def one(pg, selector: str, **kw):
    """The single visible element matching ``selector`` (waits while a rerun briefly shows old and new ones)."""
    loc = pg.locator(selector + " >> visible=true", **kw)
    deadline = time.monotonic() + 20
    while loc.count() != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    return loc.first


def test_every_page_opens_without_exception(server, page, test_run, tmp_path):
    for name in PAGES:
        page.goto(f"{server}/{'' if name == 'browse' else name}")
        settle(page)
        page.wait_for_url(re.compile(rf"[?&]page={name}(&|$)"))
        assert f"h={test_run.run_hash}" in page.url
        assert page.locator('[data-testid="stSidebar"]').inner_text().count(test_run.run_hash) >= 1
        page.screenshot(path=str(tmp_path / f"{name}.png"))
    page.goto(f"{server}/")
    settle(page)
    assert count(page, '[data-testid="stImage"]', 24) == 24


def test_controls_redraw_in_the_browser(server, page, test_run):
    ids = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    page.goto(f"{server}/compare")
    settle(page)
    page.wait_for_url(re.compile(rf"sample={ids[0]}"))
    one(page, ".st-key-next button").click()
    page.wait_for_url(re.compile(rf"sample={ids[1]}"))
    settle(page)
    slider = one(page, '.st-key-p input[type="range"]')
    slider.focus()
    slider.press("ArrowLeft")
    page.wait_for_url(re.compile(r"[?&]p=85(&|$)"))
    settle(page)
    one(page, ".st-key-raw label").click()
    page.wait_for_url(re.compile(r"[?&]raw=1(&|$)"))
    settle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == len(SEED_METHODS)

    page.goto(f"{server}/ap")
    settle(page)
    one(page, ".st-key-proto button", has_text="open").click()
    page.wait_for_url(re.compile(r"proto=open"))
    settle(page)
    assert "protocol open" in page.locator('[data-testid="stMain"]').inner_text()


def test_browse_opens_a_sample_in_compare(server, page, test_run):
    page.goto(f"{server}/")
    settle(page)
    button = page.locator('[class*="st-key-open_"] button').nth(2)
    label = button.inner_text().strip().split()[-1]
    button.click()
    page.wait_for_url(re.compile(rf"/compare\?.*sample={label}"))
    settle(page)


def test_pasted_link_opens_the_same_view(server, page, test_run):
    ids = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    page.goto(f"{server}/?page=compare&sample={ids[3]}&p=75&iou=0.3&methods=standard,vv_mixed")
    settle(page)
    page.wait_for_url(re.compile(r"/compare\?"))
    for part in (f"sample={ids[3]}", "p=75", "iou=0.3", "methods=standard%2Cvv_mixed"):
        assert part in page.url, (part, page.url)
    assert count(page, '[data-testid="stImage"]', 4) == 4  # image, two methods, the colour bar
