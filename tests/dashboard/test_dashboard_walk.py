"""One researcher's session through the dashboard in a real browser 1280 px wide (issue 15): Browse, a sample
opened in Compare, percentile, method and protocol changed, a snapshot saved, Snapshots, the snapshot opened,
back to Compare, a run setting changed and the run opened, the 5 real DIOR samples, back to the default run.

After every step the page must show no exception, no traceback text, no empty required field of the Run
settings form, and no clipped control (an element whose content is wider than its box: a label cut with an
ellipsis, a word broken over two lines, a button whose text does not fit). The same headless Debian chromium
and ``streamlit run`` process as ``test_dashboard_browser.py``."""

from __future__ import annotations

import re
import time
import warnings
from urllib.parse import urlparse

import pytest
from tests.dashboard.test_dashboard_browser import count, one, server, settle  # noqa: F401 - ``server``: the module's app process

pytestmark = pytest.mark.browser

WIDTH = 1280

# Every visible control whose text is cut: an element that clips its overflow (ellipsis, hidden) while its
# content is wider than its box, or a label/button text whose longest word is wider than the box it wraps in.
CLIPPED_JS = r"""
() => {
  const out = [];
  const ctx = document.createElement('canvas').getContext('2d');
  const root = document.querySelector('[data-testid="stApp"]');
  const seen = new Set();
  const name = e => (e.innerText || e.value || e.getAttribute('aria-label') || '')
      .trim().replace(/\s+/g, ' ').slice(0, 60);
  const visible = e => e.getClientRects().length > 0 && e.clientWidth > 0
      && getComputedStyle(e).visibility !== 'hidden';
  const controls = 'button, label, summary, [data-testid="stWidgetLabel"], input[role="combobox"], '
      + '[data-tag], [data-testid="stMetricLabel"], [data-testid="stTopNavLink"], '
      + '[data-testid="stBaseButton-pills"], [data-testid="stBaseButton-pillsActive"], '
      + '[data-testid="stBaseButton-segmented_control"], [data-testid="stBaseButton-segmented_controlActive"]';
  for (const c of root.querySelectorAll(controls)) {
    if (!visible(c) || c.closest('[data-testid="stDataFrame"], [data-testid="stCode"], [role="listbox"]')) continue;
    for (const e of [c, ...c.querySelectorAll('*')]) {
      if (seen.has(e) || !visible(e)) continue;
      seen.add(e);
      const st = getComputedStyle(e);
      const clips = st.textOverflow === 'ellipsis' || ['hidden', 'clip'].includes(st.overflowX)
          || e.tagName === 'INPUT';
      if (clips && e.scrollWidth > e.clientWidth + 1 && name(e)) {
        out.push(`cut: "${name(e)}" (${e.scrollWidth} px in ${e.clientWidth} px)`);
        continue;
      }
      const own = [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join(' ').trim();
      if (!own) continue;
      ctx.font = `${st.fontStyle} ${st.fontWeight} ${st.fontSize} ${st.fontFamily}`;
      const box = e.clientWidth || e.getBoundingClientRect().width;
      const widest = Math.max(...own.split(/\s+/).map(w => ctx.measureText(w).width));
      if (box > 0 && widest > box + 1 && st.display !== 'inline') {
        out.push(`word broken: "${own.slice(0, 60)}" (${Math.round(widest)} px word in ${box} px)`);
      }
    }
  }
  return out;
}
"""

# The Run settings form's fields a run cannot open without, and the values of every field.
FORM_JS = r"""
() => {
  const vals = {};
  for (const el of document.querySelectorAll('[data-testid="stSidebar"] [class*="st-key-f_"]')) {
    const key = [...el.classList].find(c => c.startsWith('st-key-f_')).slice(7);
    const box = el.querySelector('input[type="checkbox"]');
    const tags = [...el.querySelectorAll('[data-tag]')].map(t => t.getAttribute('aria-label'));
    const input = el.querySelector('input[type="number"], input[type="text"], textarea');
    const select = el.querySelector('[data-baseweb="select"]');
    if (box) vals[key] = box.checked ? 'on' : 'off';
    else if (key === 'f_methods') vals[key] = tags.join(',');
    else if (select) vals[key] = select.innerText.trim();
    else if (input) vals[key] = input.value;
  }
  return vals;
}
"""
REQUIRED = ("f_kind", "f_split", "f_arch", "f_methods", "f_depth", "f_prompts", "f_pct", "f_kernel")


@pytest.fixture(scope="module")
def page(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from dashboard.serving import CHROMIUM, CHROMIUM_ARGS, new_page

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = new_page(browser, WIDTH, 900)  # nothing beyond this machine
        yield pg
        browser.close()


def form(pg) -> dict[str, str]:
    """The Run settings form's values (the expander opened first)."""
    summary = pg.locator('[data-testid="stSidebar"] summary', has_text="Run settings")
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
        pg.wait_for_selector('[data-testid="stSidebar"] .st-key-f_arch input >> visible=true')
    return pg.evaluate(FORM_JS)


def check(pg, step: str) -> None:
    """The page after ``step``: no exception, no traceback, no clipped control, the form's required fields set."""
    settle(pg)
    text = pg.locator('[data-testid="stApp"]').inner_text()
    errors = pg.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"{step}: {errors.first.inner_text()}"
    assert "Traceback" not in text, f"{step}: traceback text on the page"
    clipped = pg.evaluate(CLIPPED_JS)
    if __import__("os").environ.get("DEBUG_WALK"):
        print(step, clipped); clipped = []
    assert not clipped, f"{step}: clipped controls at {WIDTH} px: {clipped}"
    if pg.locator('[data-testid="stSidebar"] .st-key-f_arch').count():
        values = form(pg)
        empty = [k for k in REQUIRED if not str(values.get(k, "")).strip() or values.get(k) == "0"]
        assert not empty, f"{step}: empty required fields of the Run settings form: {empty} ({values})"
        c2 = pg.evaluate(CLIPPED_JS)
        if __import__("os").environ.get("DEBUG_WALK"):
            print(step, "FORM", c2); c2 = []
        assert not c2, f"{step}: clipped controls in the Run settings form"


def nav(pg, title: str) -> None:
    """Click the page link ``title`` and wait until the browser is on that page (its URL path).

    A rerun the app had still queued when the link was clicked (a closing popover reports its new state, e.g.
    right after "Save snapshot") can be answered after the click, on the page it came from: the path then stays
    and the page's own content never comes. The link is then clicked once more, with a note; it must arrive."""
    from dashboard.state import PAGE_TITLES

    name = next(n for n, t in PAGE_TITLES.items() if t == title)
    wanted = "/" if name == "browse" else f"/{name}"
    for attempt in range(2):
        pg.get_by_role("link", name=title, exact=True).click()
        settle(pg)
        deadline = time.monotonic() + 10
        while urlparse(pg.url).path.rstrip("/") != wanted.rstrip("/") and time.monotonic() < deadline:
            time.sleep(0.2)
        if urlparse(pg.url).path.rstrip("/") == wanted.rstrip("/"):
            settle(pg)
            return
        warnings.warn(f"nav: {title!r} not reached after a click ({pg.url}); clicking again", stacklevel=2)
    raise AssertionError(f"the link {title!r} did not open its page: still at {pg.url}")


def choose(pg, selector: str, option: str) -> None:
    """Pick ``option`` in the selectbox at ``selector``. The box is scrolled into view before it is clicked: a
    scroll closes an open list (the sidebar scrolls when the click target is off screen), so the click is
    repeated until the list shows the option."""
    box = one(pg, selector)
    wanted = pg.locator('[role="option"]', has_text=option)
    for _ in range(5):
        box.scroll_into_view_if_needed()
        time.sleep(0.3)
        box.click()
        try:
            wanted.first.wait_for(state="visible", timeout=3_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: the list closed again; click again
            pg.keyboard.press("Escape")
    wanted.first.click()


def open_run(pg, run_hash: str, values: dict[str, str]) -> None:
    """Click "Open run" once the form shows ``values`` and wait for the URL to name ``run_hash``.

    A number typed into a form commits when its field loses focus, through a deferred React effect; a click on
    the submit button straight from the field can submit before it ran (streamlit#13751, fixed for Enter in
    streamlit#16013), so the walk leaves each field first (Tab). Should the first click still open nothing, the
    click is repeated once, with a warning, and the run must then open."""
    shown = form(pg)
    assert {k: shown.get(k) for k in values} == values, f"the form lost typed values before Open run: {shown}"
    before = pg.url
    for attempt in range(2):
        pg.get_by_role("button", name="Open run").click()
        try:
            pg.wait_for_url(re.compile(rf"h={run_hash}"), timeout=45_000)
            return
        except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError
            state = f"url {pg.url}, form {form(pg)}, sidebar {sidebar_text(pg)[:300]!r}"
            if attempt or pg.url != before:
                raise AssertionError(f"run {run_hash} did not open: {state}") from exc
            warnings.warn(f"Open run: the first click opened nothing ({state}); clicking again", stacklevel=2)


def sidebar_text(pg) -> str:
    return pg.locator('[data-testid="stSidebar"]').inner_text()


def test_a_researchers_session_at_1280(server, page, test_run):  # noqa: F811
    pg = page
    pg.goto(f"{server}/")
    check(pg, "Browse")
    assert count(pg, '[data-testid="stImage"]', 12, at_least=True) >= 12
    low = pg.locator('.st-key-bn input[type="range"]').first  # issue 21.4: this run's filter must not follow
    low.focus()
    low.press("ArrowRight")
    pg.wait_for_url(re.compile(r"[?&]bn=\d+-\d+"))
    bn = re.search(r"[?&]bn=(\d+)-", pg.url).group(1)
    check(pg, "Browse, a narrower objects-per-image range")

    button = pg.locator('[class*="st-key-open_"] button >> visible=true').nth(1)
    sample = button.inner_text().strip().split()[-1]
    button.click()
    pg.wait_for_url(re.compile(rf"/compare\?.*sample={sample}"))
    check(pg, "Compare, opened from Browse")

    slider = one(pg, '.st-key-p input[type="range"]')
    slider.focus()
    slider.press("ArrowLeft")
    pg.wait_for_url(re.compile(r"[?&]p=85(&|$)"))
    check(pg, "Compare, percentile 85")
    assert "boxes p85" in sidebar_text(pg), "the sidebar names the page's percentile"
    one(pg, ".st-key-methods button", has_text="vv_qk").click()
    pg.wait_for_url(re.compile(r"[?&]methods="))
    check(pg, "Compare, one method off")
    one(pg, ".st-key-proto button", has_text="open").click()
    pg.wait_for_url(re.compile(r"proto=open"))
    check(pg, "Compare, open protocol")
    before = form(pg)

    one(pg, '[data-testid="stSidebar"] [data-testid="stPopoverButton"]').click()
    one(pg, ".st-key-snap_title input").fill("walk: compare in the open protocol")
    one(pg, ".st-key-snap_save button").click()
    check(pg, "Compare, snapshot saved")
    assert pg.locator(".st-key-snap_title input >> visible=true").count() == 0, "the save popover stays open"

    nav(pg, "Snapshots")
    check(pg, "Snapshots")
    pg.locator('[class*="st-key-snap_open_"] button').first.click()
    check(pg, "Snapshots, one opened")
    assert "walk: compare in the open protocol" in pg.locator('[data-testid="stMain"]').inner_text()

    nav(pg, "Compare")
    check(pg, "Compare, after Snapshots")
    assert form(pg) == before, "the Run settings form changed by visiting Snapshots"
    for part in (f"sample={sample}", "p=85", "proto=open"):
        assert part in pg.url, (part, pg.url)

    limit = one(pg, '[data-testid="stSidebar"] .st-key-f_limit input')
    limit.fill("30")
    limit.press("Tab")  # commits the typed value now, as a user leaving the field does (see open_run)
    pct = one(pg, '[data-testid="stSidebar"] .st-key-f_pct input')
    pct.fill("75")
    pct.press("Tab")
    new = test_run.cfg.model_copy(update={
        "data": test_run.cfg.data.model_copy(update={"limit": 30}),
        "boxes": test_run.cfg.boxes.model_copy(update={"percentile": 75.0})})
    open_run(pg, new.run_hash, {"f_limit": "30", "f_pct": "75.00"})  # formatted: committed
    check(pg, "a changed run setting, opened")
    assert new.run_hash in sidebar_text(pg)
    # issue 21.5: the new run's percentile on every page, not the p85 left on Compare; the reset is said
    assert "boxes p75" in sidebar_text(pg) and "on this page" not in sidebar_text(pg), sidebar_text(pg)
    assert "p=85" not in pg.url, pg.url
    assert one(pg, '.st-key-p input[type="range"]').get_attribute("aria-valuetext") == "p75"
    said = pg.locator('[data-testid="stMain"]').inner_text()
    assert "percentile p75, the run's (was p85)" in said and f"objects-per-image filter cleared (was {bn}-" in said

    form(pg)
    choose(pg, '[data-testid="stSidebar"] .st-key-f_kind input', "5 real DIOR samples")
    samples = new.model_copy(update={"data": new.data.model_copy(update={"kind": "samples"})})
    open_run(pg, samples.run_hash, {"f_kind": "5 real DIOR samples"})
    check(pg, "the 5 real DIOR samples")
    assert "Model/data mismatch" in pg.locator('[data-testid="stMain"]').inner_text()
    main = pg.locator('[data-testid="stMain"]').inner_text()
    assert "class absent" not in main, "a class carried over from the demo run that the sample does not have"
    assert "(from the previous view) has no ground truth" in main, "the fallback is not said"
    nav(pg, "Browse")
    check(pg, "Browse, the 5 real DIOR samples")
    main = pg.locator('[data-testid="stMain"]').inner_text()
    assert "5 of 5 samples" in main, "a filter of the previous run hides samples of this one"
    one(pg, ".st-key-bheat label").click()  # issue 21.9: a thumbnail says which class its heatmap shows
    check(pg, "Browse, heatmaps on")
    assert pg.locator('[data-testid="stCaptionContainer"]', has_text="heatmap: ").count() == 5

    # issue 21.6: a run that cannot open leaves the working one open, the message at the form in its terms
    form(pg)
    arch = one(pg, '[data-testid="stSidebar"] .st-key-f_arch input')
    arch.fill("ViT-B-16")
    arch.press("Tab")
    pg.get_by_role("button", name="Open run").click()
    pg.locator('[data-testid="stSidebar"] [data-testid="stAlert"]', has_text="stays open").wait_for()
    check(pg, "a run that cannot open")
    assert f"h={samples.run_hash}" in pg.url and pg.locator('[data-testid="stImage"]').count() >= 5
    alert = pg.locator('[data-testid="stSidebar"] [data-testid="stAlert"]').inner_text()
    assert "ViT-B-16 needs a checkpoint" in alert and "Checkpoint field" in alert and "--" not in alert, alert
    assert pg.locator('[data-testid="stSidebar"] .st-key-f_random').count() == 1  # random weights: a labelled box

    # issue 21.8: ten methods of Per-class AP fit at 1280 px, nothing cut at the right edge
    nav(pg, "Per-class AP")
    all_methods = pg.locator(".st-key-methods_all button >> visible=true")
    if all_methods.count():
        all_methods.click()
    check(pg, "Per-class AP, every method")
    frame = pg.locator('[data-testid="stMain"] [data-testid="stTable"]').first  # AP per class (plain HTML)
    box = frame.bounding_box()
    assert box["x"] + box["width"] <= WIDTH, box
    right = frame.evaluate("f => f.querySelector('table').getBoundingClientRect().right")
    assert right <= WIDTH, f"the per-class table ends at {right} px"
    overflow = frame.evaluate("f => [f, ...f.querySelectorAll('*')].filter(e => ['auto', 'scroll']"
                              ".includes(getComputedStyle(e).overflowX)).map(e => e.scrollWidth - e.clientWidth)")
    assert all(o <= 1 for o in overflow), f"the per-class table scrolls sideways by {overflow} px"

    pg.get_by_role("button", name="Back to the default run").click()
    pg.wait_for_url(re.compile(rf"h={test_run.run_hash}"))
    check(pg, "back to the default run")
    nav(pg, "Browse")
    check(pg, "Browse, default run")
