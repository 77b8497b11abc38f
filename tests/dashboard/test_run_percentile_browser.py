"""A new run's percentile is adopted on every page in a real browser (issue 21.5): Compare is left at a page
percentile (p85), the five real DIOR samples are opened from Compare's Run settings at percentile 80, and
Compare, Per-class AP, Threshold sweep and Heatmap quality then draw their boxes at p80 (the slider, the caption
that says how the boxes were cut, the sidebar); a page percentile moved again is said where the boxes are, on
every page that shares it, and one click goes back to the run's. Headless chromium at 1280 px, one session."""

from __future__ import annotations

import re

import pytest
from tests.dashboard.test_dashboard_browser import one, server, settle  # noqa: F401 - ``server``: the app process
from tests.dashboard.test_dashboard_walk import check, choose, form, nav, open_run, page, sidebar_text  # noqa: F401

pytestmark = pytest.mark.browser

SLIDER = '.st-key-p input[type="range"]'


def main_text(pg) -> str:
    return pg.locator('[data-testid="stMain"]').inner_text()


def slider(pg) -> str:
    return one(pg, SLIDER).get_attribute("aria-valuetext")


def step_slider(pg, key: str, page_p: str) -> None:
    """The percentile slider one step with the arrow ``key``, until the URL carries the page value ``page_p``."""
    s = one(pg, SLIDER)
    s.focus()
    s.press(key)
    pg.wait_for_url(re.compile(rf"[?&]p={page_p}(&|$)"))


def test_a_new_runs_percentile_on_every_page(server, page, test_run):  # noqa: F811
    pg = page
    pg.goto(f"{server}/compare")
    check(pg, "Compare")
    step_slider(pg, "ArrowLeft", "85")
    check(pg, "Compare at p85")
    assert "page setting p85, not the run's p90" in main_text(pg)

    form(pg)
    choose(pg, '[data-testid="stSidebar"] .st-key-f_kind input', "5 real DIOR samples")
    pct = one(pg, '[data-testid="stSidebar"] .st-key-f_pct input')
    pct.fill("80")
    pct.press("Tab")
    samples = test_run.cfg.model_copy(update={
        "data": test_run.cfg.data.model_copy(update={"kind": "samples"}),
        "boxes": test_run.cfg.boxes.model_copy(update={"percentile": 80.0})})
    open_run(pg, samples.run_hash, {"f_kind": "5 real DIOR samples", "f_pct": "80.00"})
    check(pg, "the five samples at p80, from Compare")
    assert "boxes p80" in sidebar_text(pg) and "on this page" not in sidebar_text(pg), sidebar_text(pg)
    assert "percentile p80, the run's (was p85)" in main_text(pg)
    for title in ("Compare", "Per-class AP", "Threshold sweep", "Heatmap quality"):
        if title != "Compare":
            nav(pg, title)
        check(pg, f"{title}, the new run")
        text = main_text(pg)
        assert "boxes: percentile 80 of the" in text, f"{title}: the caption does not say p80"
        assert "page setting" not in text, title
        assert "p=85" not in pg.url and f"h={samples.run_hash}" in pg.url, (title, pg.url)
        if title != "Heatmap quality":  # Quality tables every percentile; its caption names the run's
            assert slider(pg) == "p80", f"{title}: slider at {slider(pg)}"

    nav(pg, "Per-class AP")
    step_slider(pg, "ArrowRight", "85")
    check(pg, "Per-class AP, a page percentile")
    for title in ("Per-class AP", "Compare", "Threshold sweep"):
        if title != "Per-class AP":
            nav(pg, title)
        check(pg, f"{title}, the page percentile")
        assert slider(pg) == "p85", title
        assert "page setting p85, not the run's p80" in main_text(pg), f"{title}: the override is not said"
        assert "boxes p85 on this page (run: p80)" in sidebar_text(pg), title
    one(pg, ".st-key-p_back button", has_text="Run's p80").click()  # one click back, on the Sweep page
    pg.wait_for_function("() => !location.search.includes('p=85')")
    check(pg, "back to the run's percentile")
    assert slider(pg) == "p80" and "page setting" not in main_text(pg)
    nav(pg, "Compare")
    assert slider(pg) == "p80" and "on this page" not in sidebar_text(pg)
