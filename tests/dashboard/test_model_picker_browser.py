"""The Run settings model picker in a real browser, against a local stand-in for the Hugging Face hub (issue 25).

The app runs with ``HF_ENDPOINT`` pointing at ``hub_standin`` and its own models folder and Hugging Face cache.
The stand-in serves, at the catalog's own hub paths, a random-weight demo checkpoint: for ``openai-b16`` (whose
sha256 the catalog leaves unconfirmed, so the download is kept) and for ``remoteclip-b32`` (whose published sha256
it does not have, so the download is refused and removed). The picker must list the catalog, mark what is here,
download only on request, with a progress bar, and say why a download was refused.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from tests.hub_standin import HubStandin
from tests.dashboard.test_dashboard_browser import one, settle
from tests.dashboard.test_dashboard_walk import choose, nav

from dashboard import serving
from dashboard.serving import CHROMIUM, CHROMIUM_ARGS
from surgery_core.model.catalog import CATALOG

pytestmark = pytest.mark.browser

WIDTH = 1280
PICKER = '[data-testid="stSidebar"] .st-key-model_picker'


@pytest.fixture(scope="module")
def hub_and_app(dashboard_env, tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.skip("headless browser test needs Debian chromium at /usr/bin/chromium (apt-get install -y chromium)")
    import torch

    from surgery_core.demo.model import DEMO_ARCH
    from surgery_core.model.loading import load_model

    buf = io.BytesIO()
    torch.save(load_model(DEMO_ARCH, random_weights=True).model.state_dict(), buf)
    data = buf.getvalue()
    base = tmp_path_factory.mktemp("picker")
    with HubStandin() as hub:
        for name in ("openai-b16", "remoteclip-b32"):
            e = CATALOG[name]
            hub.files[f"{e.repo}/{e.file}"] = data
        hub.chunk_delay = 0.15  # about 4 s for the 30 MB file: the progress bar is there to be seen
        env = {**os.environ, **dashboard_env, "HF_ENDPOINT": hub.url, "SURGERY_MODELS": str(base / "models"),
               "HF_HUB_CACHE": str(base / "hf")}
        env.pop("HF_HUB_OFFLINE", None)
        try:
            proc, url = serving.start(env, base / "server.log", timeout=90)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        try:
            yield hub, url, base, data
        finally:
            serving.stop(proc)


@pytest.fixture(scope="module")
def page(hub_and_app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = serving.new_page(browser, WIDTH, 1000, timeout_ms=90_000)  # the stand-in hub is local; nothing beyond
        yield pg
        browser.close()


def open_settings(pg) -> None:
    summary = pg.locator('[data-testid="stSidebar"] summary', has_text="Run settings")
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
    pg.wait_for_selector(PICKER + " >> visible=true")


def picked(pg) -> str:
    """The picker's shown value."""
    return one(pg, PICKER + " input").input_value()


def sidebar(pg) -> str:
    return pg.locator('[data-testid="stSidebar"]').inner_text()


def test_the_picker_lists_the_catalog_downloads_on_request_and_refuses_a_wrong_file(hub_and_app, page, tmp_path):
    hub, url, base, data = hub_and_app
    pg = page
    tmp_path = Path(os.environ.get("SURGERY_SCREENSHOTS") or tmp_path)  # where the screenshots go
    pg.goto(url + "/run")
    settle(pg)
    open_settings(pg)
    assert "Architecture and checkpoint below" in picked(pg)
    # every catalog entry is listed, with what it is and whether it is here
    one(pg, PICKER).click()
    options = pg.locator('[role="option"]').all_inner_texts()
    pg.keyboard.press("Escape")
    for name in CATALOG:
        assert any(o.startswith((f"↓ {name} · ", f"✓ {name} · ")) for o in options), (name, options)
    assert "↓ remoteclip-b32 · ViT-B-32 · QuickGELU · not here (605 MB)" in options
    assert hub.requests == [], "listing the catalog touches no network"

    choose(pg, PICKER, "openai-b16 · ViT-B-16")
    settle(pg)
    assert "OpenAI CLIP ViT-B/16 is not on this machine" in sidebar(pg)
    assert hub.requests == [], "picking a model downloads nothing"
    pg.screenshot(path=str(tmp_path / "picker_absent.png"), full_page=True)

    pg.get_by_role("button", name="Download openai-b16").click()
    bar = pg.locator('[data-testid="stSidebar"] [data-testid="stProgress"]')
    bar.first.wait_for(state="visible", timeout=30_000)
    seen = ""
    deadline = time.monotonic() + 30
    while "Downloading openai-b16:" not in seen and time.monotonic() < deadline:
        seen = bar.first.inner_text() if bar.count() else seen
        time.sleep(0.1)
    assert "Downloading openai-b16:" in seen and f" / {len(data) / 1e6:.0f} MB" in seen, seen
    pg.get_by_text("openai-b16 downloaded").wait_for(timeout=60_000)
    settle(pg)
    assert picked(pg).startswith("✓ openai-b16 · ") and "on this machine" in picked(pg)
    assert "Hugging Face cache" in sidebar(pg)
    e = CATALOG["openai-b16"]
    cached = list((base / "hf").rglob(e.file))
    assert len(cached) == 1 and cached[0].read_bytes() == data
    # one download (huggingface_hub 2.5 also asks the endpoint's /api/agent-harnesses once: not a file)
    assert [r[1] for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]] == [f"/{e.repo}/resolve/main/{e.file}"]
    pg.screenshot(path=str(tmp_path / "picker_downloaded.png"), full_page=True)

    # the served file is not remoteclip-b32's published one (its size already differs): refused, nothing kept
    hub.chunk_delay = 0.0
    choose(pg, PICKER, "remoteclip-b32 · ViT-B-32")
    settle(pg)
    pg.get_by_role("button", name="Download remoteclip-b32").click()
    err = pg.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]')
    err.first.wait_for(timeout=60_000)
    assert "bytes, but remoteclip-b32's published file has 605,208,421" in err.first.inner_text()
    settle(pg)
    assert picked(pg).startswith("↓ remoteclip-b32 · ") and "not here" in picked(pg)
    assert not list((base / "hf").rglob(CATALOG["remoteclip-b32"].file))
    pg.screenshot(path=str(tmp_path / "picker_refused.png"), full_page=True)

    # the session goes on across pages: the picker still knows what is here
    nav(pg, "Compare")
    open_settings(pg)
    choose(pg, PICKER, "openai-b16 · ViT-B-16")
    settle(pg)
    assert picked(pg).startswith("✓ openai-b16 · ") and "on this machine" in picked(pg)
    pg.screenshot(path=str(tmp_path / "picker_compare.png"), full_page=True)
