"""The Runs page in a real browser 1280 px wide (issue 23): one session opens the Runs page, compares two runs
(surgery depth 6 and 2) on a shared sample, steps to the next sample, saves a snapshot, and reopens it from the
Snapshots page. After every step: no exception, no traceback, no clipped control (``test_dashboard_walk.check``).
The same ``streamlit run`` process and headless Debian chromium as the other browser tests."""

from __future__ import annotations

import re

import pytest
from tests.conftest import environ
from tests.dashboard.test_dashboard_browser import count, one, server, settle  # noqa: F401 - ``server``: the module's app process
from tests.dashboard.test_dashboard_walk import WIDTH, check, nav

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def second_run(dashboard_env, test_run):
    """The dashboard tests' run at surgery depth 2 (two methods), in the same store; its AP tables and quality
    are not computed, so the Runs page shows "not computed" for it."""
    from surgery_core.run.facade import Run

    with environ(dashboard_env):
        return Run.open(test_run.cfg.model_copy(update={"surgery_depth": 2, "methods": ("standard", "vv_mixed")}))


@pytest.fixture(scope="module")
def page(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from dashboard.serving import CHROMIUM, CHROMIUM_ARGS, new_page

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = new_page(browser, WIDTH, 900, timeout_ms=90_000)  # nothing beyond this machine
        yield pg
        browser.close()


def pick_row(pg, text: str) -> None:
    """Add the (run, method) row whose option reads ``text`` to the rows compared."""
    box = one(pg, ".st-key-pairs input")
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(text)
    pg.locator('[role="option"]', has_text=text).first.click()
    pg.keyboard.press("Escape")
    settle(pg)


def test_runs_page_compare_snapshot_and_reopen(server, page, test_run, second_run, tmp_path):  # noqa: F811
    pg = page
    pg.goto(f"{server}/runs")
    check(pg, "Runs")
    main = pg.locator('[data-testid="stMain"]')
    # the table is drawn on a canvas: its "not computed" cells show in the button that computes them
    # second_run's three products (AP tables, quality, CorLoc); runs other tests of the session left in the store
    # (the walk's) may add theirs
    button = one(pg, ".st-key-runs_compute button")  # drawn after the leaderboard: wait for it, and for one
    assert button.count() == 1, f"no 'Compute the missing numbers' button; the page said: {main.inner_text()}"
    assert re.search(r"Compute the missing numbers \(\d+ products? of \d+ runs?\)", button.inner_text())
    if "2 runs in" in main.inner_text():
        assert "Compute the missing numbers (3 products of 1 run)" in main.inner_text()
    pg.screenshot(path=str(tmp_path / "runs.png"))

    pick_row(pg, f"{test_run.run_hash} · vv_mixed")
    pick_row(pg, f"{second_run.run_hash} · vv_mixed")
    pg.wait_for_url(re.compile(r"[?&]pairs="))
    check(pg, "Runs, two runs compared")
    assert count(pg, '[data-testid="stMain"] [data-testid="stImage"]', 4) == 4  # image, two pairs, colour scale
    text = main.inner_text()
    assert f"Compared on {len(test_run.grids.rows)} shared images" in text
    assert "Per-class AP across runs" in text and "Threshold sweep" in text
    first = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    one(pg, ".st-key-rnext button").click()
    pg.wait_for_url(re.compile(rf"[?&]rsample={first[1]}(&|$)"))
    check(pg, "Runs, next shared sample")
    pg.screenshot(path=str(tmp_path / "runs_compare.png"), full_page=True)

    one(pg, '[data-testid="stSidebar"] [data-testid="stPopoverButton"]').click()
    one(pg, ".st-key-snap_title input").fill("runs: depth 6 against depth 2")
    one(pg, ".st-key-snap_save button").click()
    check(pg, "Runs, snapshot saved")
    assert "Snapshot saved" in pg.locator('[data-testid="stSidebar"]').inner_text()

    nav(pg, "Snapshots")
    check(pg, "Snapshots")
    pg.locator('[class*="st-key-snap_open_"] button').first.click()
    check(pg, "Snapshots, the Runs snapshot opened")
    text = main.inner_text()
    assert "runs: depth 6 against depth 2" in text and "Runs page" in text
    assert "per-class AP across runs" in text and first[1] in text
    assert count(pg, '[data-testid="stMain"] [data-testid="stImage"]', 4, at_least=True) >= 4

    nav(pg, "Runs")  # back: the comparison is still there
    check(pg, "Runs, after Snapshots")
    assert f"rsample={first[1]}" in pg.url and count(pg, '[data-testid="stMain"] [data-testid="stImage"]', 4) == 4
