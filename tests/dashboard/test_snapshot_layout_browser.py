"""A snapshot reopens in the layout it was saved with (issue 21.7), in headless chromium at 1280 px: the page is
screenshot when the snapshot is saved and again when it is reopened from its permalink; every picture must sit in
a row of the same number of pictures, at the same width, height and column, and show the same pixels.

Compare at 6 pictures per row with every method (13 pictures over three rows, then the colour bar), Browse with
heatmaps at the small (8 a row, framed) and large (3 a row) thumbnail sizes, the colour bar above them."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from tests.dashboard.test_dashboard_browser import one, server, settle  # noqa: F401 - ``server``: the app process

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 4400  # tall enough that no picture of these views needs a scroll: one screenshot each
PICTURES = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')]
  .filter(e => e.getClientRects().length).map(e => { const r = e.getBoundingClientRect();
    return [r.x, r.y, r.width, r.height]; })"""


@pytest.fixture(scope="module")
def page(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from dashboard.serving import CHROMIUM, CHROMIUM_ARGS, new_page

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield new_page(browser, WIDTH, HEIGHT, timeout_ms=90_000)
        browser.close()


def rows(boxes: list[list[float]]) -> list[list[list[float]]]:
    """Pictures grouped in rows (same top edge within 2 px), top to bottom, each row left to right."""
    out: list[list[list[float]]] = []
    for b in sorted(boxes, key=lambda b: (round(b[1]), b[0])):
        if out and abs(out[-1][0][1] - b[1]) <= 2:
            out[-1].append(b)
        else:
            out.append([b])
    return out


def layout(pg) -> tuple[list, np.ndarray]:
    """(rows of picture boxes, screenshot as an RGB array) of the page as it is now."""
    from PIL import Image

    boxes, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:  # the page drawn, its pictures decoded and laid out: the same twice
        settle(pg)
        time.sleep(1.0)
        now = pg.evaluate(PICTURES)
        if now and now == boxes:
            break
        boxes = now
    assert boxes and max(y + h for _, y, _, h in boxes) <= HEIGHT, f"a picture lies below the screenshot: {sorted(boxes, key=lambda b: -b[1])[:3]}"
    shot = np.asarray(Image.open(io.BytesIO(pg.screenshot())).convert("RGB"), np.int16)
    return rows(boxes), shot


def crop(shot: np.ndarray, box: list[float], inset: int = 2) -> np.ndarray:
    x, y, w, h = (int(round(v)) for v in box)
    return shot[y + inset:y + h - inset, x + inset:x + w - inset]


def blocks(a: np.ndarray, k: int = 8) -> np.ndarray:
    """Means of ``k`` x ``k`` pixel blocks: a picture drawn at another fraction of a pixel (the browser resamples
    it differently) keeps its block means, a different picture does not."""
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def picture_difference(shot_a: np.ndarray, a: list[float], shot_b: np.ndarray, b: list[float]) -> float:
    """Mean absolute difference (grey levels) of 8 x 8 block means of the picture at box ``a`` of one screenshot
    and at box ``b`` of another, over the best of the nine whole-pixel alignments."""
    ca = blocks(crop(shot_a, a))
    best = np.inf
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cb = blocks(crop(shot_b, [b[0] + dx, b[1] + dy, b[2], b[3]]))
            if cb.shape == ca.shape:
                best = min(best, float(np.abs(ca - cb).mean()))
    return best


SAME = 3.0  # grey levels: the same picture drawn again; two thumbnails of a row differ by far more (checked)


def save_and_reopen(pg, server, title: str) -> tuple[tuple[list, np.ndarray], tuple[list, np.ndarray]]:  # noqa: F811
    saved = layout(pg)
    one(pg, '[data-testid="stSidebar"] [data-testid="stPopoverButton"]').click()
    one(pg, ".st-key-snap_title input").fill(title)
    one(pg, ".st-key-snap_save button").click()
    settle(pg)
    link = one(pg, '[data-testid="stSidebar"] a', has_text="open it").get_attribute("href")
    assert link.startswith("?page=snapshots&snapshot="), link
    pg.goto(f"{server}/{link}")  # the snapshot's permalink, in the same session
    pg.wait_for_url(re.compile(r"[?&]snapshot="))
    one(pg, '[data-testid="stMain"] h3', has_text=title)
    return saved, layout(pg)


def assert_same_layout(saved, reopened, what: str) -> None:
    (a, shot_a), (b, shot_b) = saved, reopened
    assert [len(r) for r in a] == [len(r) for r in b], f"{what}: pictures per row {[len(r) for r in a]} when " \
                                                       f"saved, {[len(r) for r in b]} reopened"
    for i, (ra, rb) in enumerate(zip(a, b)):
        for j, (pa, pb) in enumerate(zip(ra, rb)):
            # same column (x), same width and height; the rows themselves move down under the snapshot's header
            assert np.allclose([pa[0], pa[2], pa[3]], [pb[0], pb[2], pb[3]], atol=1.0), \
                f"{what}: picture {j + 1} of row {i + 1} at x {pa[0]:.0f}, {pa[2]:.0f}x{pa[3]:.0f} px when saved, " \
                f"at x {pb[0]:.0f}, {pb[2]:.0f}x{pb[3]:.0f} px reopened"
            diff = picture_difference(shot_a, pa, shot_b, pb)
            assert diff < SAME, f"{what}: picture {j + 1} of row {i + 1} differs by {diff:.1f} grey levels on average"


def test_compare_at_six_a_row_reopens_as_saved(server, page, test_run):  # noqa: F811
    methods = ",".join(test_run.cfg.methods)
    page.goto(f"{server}/compare?cols=6&methods={methods}")
    settle(page)
    page.wait_for_url(re.compile(r"[?&]cols=6"))
    saved, reopened = save_and_reopen(page, server, "layout: compare at 6 a row")
    n = 1 + len(test_run.cfg.methods)
    expect = [6] * (n // 6) + ([n % 6] if n % 6 else []) + [1]  # the pictures, then the colour bar
    assert [len(r) for r in saved[0]] == expect, saved[0]
    assert_same_layout(saved, reopened, "Compare, 6 a row")


@pytest.mark.parametrize("size, per_row", [("small", 8), ("large", 3)])
def test_browse_thumbnails_reopen_as_saved(server, page, size, per_row):  # noqa: F811
    page.goto(f"{server}/?bsize={size}")
    settle(page)
    one(page, f".st-key-bsize button", has_text=size).click()  # the size, also when a link's value was dropped
    settle(page)
    if not one(page, ".st-key-bheat input").is_checked():
        one(page, ".st-key-bheat label").click()  # heatmaps on: the colour bar sits above the thumbnails
    page.locator('[data-testid="stCaptionContainer"]', has_text="heatmap: ").first.wait_for()
    saved, reopened = save_and_reopen(page, server, f"layout: browse {size}")
    assert len(saved[0][0]) == 1 and [len(r) for r in saved[0][1:]] == [per_row] * (24 // per_row), saved[0]
    assert_same_layout(saved, reopened, f"Browse, {size} thumbnails")
    first, second = saved[0][1][:2]  # the comparison tells pictures apart: two samples differ beyond SAME
    assert picture_difference(saved[1], first, saved[1], [second[0], first[1], first[2], first[3]]) > 4 * SAME
