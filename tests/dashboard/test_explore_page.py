"""The Explore page through ``streamlit.testing.v1.AppTest``: phrases, text modes, the image-side cache, uploads
(hostile ones included: refused by name, nothing written), resolution checks, permalinks and snapshots.

Runs on the dashboard tests' demo run (``dashboard_env`` / ``test_run`` of ``conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.io as pio
from tests.dashboard.test_dashboard import APP, ok
from tests.run.test_explore import HOSTILE, encode, hostile, scene

from surgery_core.model.methods import METHODS
from surgery_core.run import explore


def app(query: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": "explore", **(query or {})})
    return at.run()


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def charts(at) -> list:
    return at.get("plotly_chart")


def files_under(*roots: str) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time."""
    out = {}
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file():
                s = p.stat()
                out[str(p)] = (s.st_size, s.st_mtime_ns)
    return out


def test_methods_are_the_registrys_and_phrases_make_one_figure_each(dashboard_env, test_run):
    at = app({"xq": "swimming pool, roundabout"})
    ok(at)
    assert at.query_params["page"] == "explore"
    assert at.pills(key="methods").options == list(METHODS)  # what the registry holds, however many
    assert len(charts(at)) == 2
    md = markdown(at)
    assert "**swimming pool**" in md and "**roundabout**" in md
    cap = captions(at)
    assert "2 phrases: treated as a **class set**" in cap
    assert "model Demo-ViT-32" in cap and "text mode class set" in cap
    size = test_run.cfg.input.size or test_run.loaded.image_size
    assert f"input {size} px squashed" in cap and "surgery depth 6" in cap


def test_text_modes_are_said_in_the_caption(dashboard_env):
    at = app({"xq": "airplane, ship", "xmode": "independent"})
    ok(at)
    assert "treated as **independent queries**" in captions(at) and "text mode independent" in captions(at)
    assert "p(phrase | image)" not in markdown(at)  # a softmax over the set exists only for a class set
    at.segmented_control(key="xmode").set_value("set").run()
    ok(at)
    assert "treated as a **class set**" in captions(at) and "p(phrase | image) over the set" in markdown(at)
    assert at.query_params.get("xmode") is None  # the default is not written into the link
    at.text_input(key="xq").set_value("airplane").run()
    ok(at)
    assert "1 phrase: single-text feature surgery (one phrase alone)" in captions(at)
    assert at.segmented_control(key="xmode").disabled


def test_a_new_phrase_recomputes_only_the_text_side(dashboard_env, test_run):
    cache = explore.shared_token_cache()
    at = app({"xq": "storage tank"})
    ok(at)
    computed, hits = cache.computed, cache.hits
    for phrase in ("tennis court", "ship, windmill", "a red roof"):
        at.text_input(key="xq").set_value(phrase).run()
        ok(at)
        assert "image side: reused from the cache" in captions(at)
    assert cache.computed == computed and cache.hits == hits + 3
    at.pills(key="methods").set_value(["vv_mixed"]).run()  # fewer methods: the same image side
    assert cache.computed == computed and len(charts(at)) == 1
    # another resolution: one forward pass (384 px, which no other test opens: the image-side cache is
    # process-wide, and the inspector's test has already computed this sample at 448 px)
    at.number_input(key="xsize").set_value(384).run()
    ok(at)
    assert cache.computed == computed + 1 and "grid 12x12" in captions(at)
    assert at.query_params["xsize"] == "384"


def test_a_bad_resolution_says_why_and_keeps_the_last_valid_one(dashboard_env):
    at = app({"xq": "airplane"})
    at.number_input(key="xsize").set_value(800).run()
    ok(at)
    assert "grid 25x25" in captions(at)
    at.number_input(key="xsize").set_value(810).run()
    assert not at.exception
    assert len(at.error) == 1 and "input size 810 px must be a multiple of the 32 px patch: try 800 or 832" \
        in at.error[0].value
    assert "grid 25x25" in captions(at) and len(charts(at)) == 1
    at.number_input(key="xsize").set_value(448).run()
    at.number_input(key="xwin").set_value(224).run()
    at.number_input(key="xstride").set_value(100).run()
    assert "stride 100 px must be a multiple" in at.error[0].value
    at.number_input(key="xstride").set_value(96).run()
    ok(at)
    assert "windows 224 px at stride 96 px (4x4 = 16 windows" in captions(at)


def test_upload_shows_maps_and_hostile_files_change_nothing(dashboard_env):
    at = app({"xq": "a red roof", "xsrc": "upload"})
    ok(at)
    assert len(charts(at)) == 0 and "Upload a JPEG, PNG or TIFF" in markdown(at) + "".join(
        i.value for i in at.info)
    roots = (dashboard_env["SURGERY_CACHE"], dashboard_env["SURGERY_STORE"])
    before = files_under(*roots)
    img = scene(500, 700, seed=3)
    at.file_uploader(key="x_upload").set_value(("roofs.png", encode(img, ".png"), "image/png")).run()
    ok(at)
    assert "**roofs.png** · 700x500 px · uploaded, kept in memory only" in markdown(at)
    n_maps = len(charts(at))
    assert n_maps == 1
    for name in HOSTILE:
        data, words = hostile()[name]
        at.file_uploader(key="x_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, name
        assert len(at.error) == 1, name
        msg = at.error[0].value
        assert f"{name}: " in msg and words in msg and "The view still shows `roofs.png`" in msg, msg
        assert "**roofs.png** · 700x500 px" in markdown(at) and len(charts(at)) == n_maps, name
    for name, img16, words in (("deep.png", img.astype(np.uint16) * 257, "16-bit PNG"),
                               ("alpha.png", np.dstack([img, np.full(img.shape[:2], 9, np.uint8)]), "alpha")):
        at.file_uploader(key="x_upload").set_value((name, encode(img16, ".png"), "image/png")).run()
        ok(at)
        assert f"**{name}** · 700x500 px" in markdown(at) and words in markdown(at)
    # A browser replaces a file in two steps (removed, then the new one): a refused replacement keeps the image.
    at.file_uploader(key="x_upload").set_value(None).run()
    assert "700x500 px" not in markdown(at) and len(charts(at)) == 0
    at.file_uploader(key="x_upload").set_value(("notes.png", hostile()["notes.png"][0], "image/png")).run()
    assert "The view still shows `alpha.png`" in at.error[0].value and len(charts(at)) == n_maps
    assert "object at 0x" not in at.error[0].value  # no memory address in the message
    assert files_under(*roots) == before  # uploads are never written: no cache entry, no store entry


def test_permalink_of_a_sample_with_phrases_reopens_the_same_view(dashboard_env, test_run):
    ids = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    at = app()
    at.selectbox(key="sample").set_value(ids[2]).run()
    at.text_input(key="xq").set_value("airplane, vehicle").run()
    at.segmented_control(key="xmode").set_value("independent").run()
    at.pills(key="methods").set_value(["standard", "vv_mixed"]).run()
    at.number_input(key="xsize").set_value(256).run()
    ok(at)
    link = {k: at.query_params[k] for k in at.query_params}
    assert link["sample"] == ids[2] and link["xq"] == "airplane, vehicle" and link["xmode"] == "independent"
    assert link["methods"] == "standard,vv_mixed" and link["xsize"] == "256"
    shown = markdown(at), captions(at).split("image side")[0], len(charts(at))
    again = app({k: v for k, v in link.items() if k != "page"})
    ok(again)
    assert again.text_input(key="xq").value == "airplane, vehicle"
    assert (markdown(again), captions(again).split("image side")[0], len(charts(again))) == shown


def test_an_upload_link_asks_for_the_image_again(dashboard_env):
    at = app({"xsrc": "upload", "xq": "airplane"})
    ok(at)
    assert any("Links carry dataset samples, not uploads" in i.value for i in at.info)


def test_snapshot_keeps_image_phrases_methods_and_maps(dashboard_env):
    from surgery_core.share.snapshots import SnapshotStore

    store = SnapshotStore(Path(dashboard_env["SURGERY_STORE"]) / "snapshots")
    old = {m.id for m in store.list()}
    at = app({"xsrc": "upload", "xq": "roof, road", "methods": "standard,vv_mixed"})
    at.file_uploader(key="x_upload").set_value(("mine.jpg", encode(scene(), ".jpg"), "image/jpeg")).run()
    ok(at)
    at.text_input(key="snap_title").set_value("explore roofs")
    at.button(key="snap_save").click().run()
    ok(at)
    new = [m for m in store.list() if m.id not in old]
    assert len(new) == 1 and new[0].page == "explore"
    snap = store.load(new[0].id)
    s = snap.state
    assert s["phrases"] == ["roof", "road"] and s["methods"] == ["standard", "vv_mixed"]
    assert s["source"] == "upload" and s["image_name"] == "mine.jpg" and s["text_mode"] == "set"
    assert s["resolution"]["size"] and "image" in snap.images
    figs = [b for b in snap.numbers["blocks"] if b["kind"] == "chart"]
    assert len(figs) == 2
    fig = pio.from_json(json.dumps(figs[0]["figure"]))
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 and np.asarray(heat[0].z, float).shape == (7, 7)  # the maps' values are kept
    assert sum(t.type == "image" for t in fig.data) == 2
    view = app({"page": "snapshots", "snapshot": new[0].id})
    ok(view)
    assert "explore roofs" in markdown(view) and len(charts(view)) == 2
    assert "roof" in markdown(view) and any("read-only" in c.value for c in view.caption)
