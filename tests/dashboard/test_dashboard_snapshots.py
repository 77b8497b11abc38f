"""Snapshots and the run report in the dashboard (``streamlit.testing.v1.AppTest``).

Saving from a page stores what it shows; the Snapshots page lists (newest first, searchable), opens read-only
from the file alone (also by permalink, also with the run store and the dataset gone), deletes after a
confirmation, and lists damaged files with a message. The Run page's download buttons hand out the report.
The run, environment and helpers are those of ``test_dashboard.py``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from urllib.parse import urlencode

import pytest
from tests.dashboard.test_dashboard import app, goto, markdown, ok, tables

from surgery_core.eval.protocols import Cell
from surgery_core.model.methods import SEED_METHODS  # what Compare shows by default
from surgery_core.share.snapshots import shown_cells

ID_RE = r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-f]{8}"


def store():
    from dashboard.operator_settings import snapshot_store

    return snapshot_store()


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def image_urls(at) -> list[str]:
    """Media URLs of the images on screen: named by a hash of their bytes, so equal URLs mean equal bytes."""
    return [im.proto.imgs[0].url for im in at.image]


def save(at, title: str, note: str = ""):
    """Fill the sidebar's "Save snapshot" form and submit it; returns the new snapshot's id."""
    before = {m.id for m in store().list()}
    at.text_input(key="snap_title").set_value(title)
    at.text_area(key="snap_note").set_value(note)
    at.button(key="snap_save").click().run()
    ok(at)
    new = [m for m in store().list() if m.id not in before]
    assert len(new) == 1, [e.value for e in at.error]
    assert any(new[0].id in s.value for s in at.success)
    return new[0]


def open_link(sid: str, **extra):
    return app({"page": "snapshots", "snapshot": sid} | extra)


# ------------------------------------------------------------------------------------------ compare
def test_snapshot_of_compare_reopens_by_permalink(dashboard_env, test_run):
    image = int(test_run.grids.rows[3])
    sample = test_run.dataset.images[image].image_id
    at = goto(app({"sample": sample, "p": "75", "iou": "0.3"}), "compare")
    ok(at)
    cls = at.selectbox(key="cls").value
    live_md, live_caps, live_images = markdown(at), captions(at), image_urls(at)
    prob_line = next(m.value for m in at.markdown if "p(" in m.value)
    panel_lines = [m.value for m in at.markdown if re.search(r"\d+ box(es)?, \d+ TP", m.value)]
    assert len(panel_lines) == len(SEED_METHODS)

    meta = save(at, "Compare check", "why this sample\nsecond line")
    assert re.fullmatch(ID_RE, meta.id) and meta.title == "Compare check"
    assert meta.page == "compare" and meta.run_hash == test_run.run_hash
    assert meta.image_count == 2 + len(SEED_METHODS)  # the image, one per method shown, the colour scale
    snap = store().load(meta.id)
    s = snap.state
    assert (s["image_id"], s["class"], s["image_index"]) == (sample, cls, image)
    # the boxes shown: one cell per method under one key, not method, protocol and percentile apart
    cells = [Cell.of(m, "present", 75.0) for m in SEED_METHODS]
    assert s["cells"] == [c.to_json() for c in cells] and shown_cells(s) == cells and s["iou"] == 0.3
    assert not {"methods", "percentile", "protocol", "box_rule"} & set(s) and s["run_hash"] == test_run.run_hash
    assert s["config"]["data"]["limit"] == test_run.cfg.data.limit and s["link"]["sample"] == sample
    assert snap.note == "why this sample\nsecond line"

    again = open_link(meta.id)  # a new session on the permalink
    ok(again)
    assert again.query_params["page"] == "snapshots" and again.query_params["snapshot"] == meta.id
    text = markdown(again)
    assert prob_line in text and all(line in text for line in panel_lines)
    assert "Compare check" in text and "why this sample" in text
    how = [c for c in live_caps if "boxes: percentile" in c]
    assert how and all(c in captions(again) for c in how)  # the captions that say how it was computed
    assert image_urls(again) == live_images  # the same bytes, in the same order
    assert f"| **sample** | {sample} |" in text  # the state table
    assert all(row in text for row in compare_rows(75, 0.3))  # the cells shown as the separate settings
    assert live_md  # the live page drew something to compare with


def compare_rows(p, iou) -> list[str]:
    """The settings table's rows of Compare's boxes at percentile ``p`` and IoU ``iou``, the seed's methods and the
    present protocol: what a snapshot shows, whichever layout its file has."""
    return [f"| **methods** | {', '.join(SEED_METHODS)} |", f"| **heatmap percentile** | {p:g} |",
            f"| **IoU threshold** | {iou:g} |", "| **protocol** | present |"]


def test_a_snapshot_file_of_the_layout_before_cells_opens_unchanged(dashboard_env, test_run):
    """A snapshot written before cells (methods, percentile and protocol as separate state keys; its link's query
    parameters as they were) opens with the same settings, numbers and live-view link, and reads as its cells."""
    image = int(test_run.grids.rows[3])
    rec = test_run.dataset.images[image]
    sample, cls = rec.image_id, test_run.classes[int(rec.labels[0])]
    link = {"page": "compare", "sample": sample, "cls": cls, "p": "75", "iou": "0.3", "proto": "present",
            "methods": ",".join(SEED_METHODS)}
    state = {"page": "compare", "run_hash": test_run.run_hash, "run_label": "", "config": test_run.cfg.to_file_dict(),
             "model": test_run.model_info, "dataset": test_run.dataset.name, "split": test_run.dataset.split,
             "image_id": sample, "class": cls, "image_index": image, "class_index": test_run.classes.index(cls),
             "methods": list(SEED_METHODS), "percentile": 75.0, "iou": 0.3, "protocol": "present",
             "interp": None, "alpha": 0.5, "page_title": "Compare", "link": link}
    numbers = {"blocks": [{"kind": "markdown", "text": "**an old view**", "name": None},
                          {"kind": "numbers", "name": "mAP", "values": {"mAP vv_mixed": 0.25}, "caption": None,
                           "style": "metrics"}]}
    sid = "20250102T030405Z-before-cells-0123abcd"
    doc = {"schema": 1, "kind": "surgery-snapshot", "id": sid, "title": "Before cells", "note": "kept as it was",
           "created": "2025-01-02T03:04:05Z", "run_hash": test_run.run_hash, "page": "compare", "state": state,
           "numbers": numbers, "images": []}
    path = store().root / f"{sid}.snapshot.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("snapshot.json", json.dumps(doc, indent=1))
    try:
        snap = store().load(sid)
        assert snap.state == state and snap.numbers == numbers  # read as written
        assert shown_cells(snap.state) == [Cell.of(m, "present", 75.0) for m in SEED_METHODS]
        at = open_link(sid)
        ok(at)
        text = markdown(at)
        assert "Before cells" in text and "kept as it was" in text and "**an old view**" in text
        assert all(row in text for row in compare_rows(75, 0.3)), text
        assert f"| **sample** | {sample} |" in text and f"| **class** | {cls} |" in text
        assert f"(?{urlencode(link)})" in text  # the live view of these settings: the old permalink, unchanged
        assert [m.value for m in at.metric] == ["0.2500"]
        live = app(link)  # and the old permalink itself still opens that view
        ok(live)
        assert live.selectbox(key="sample").value == sample and live.selectbox(key="cls").value == cls
        assert live.session_state["p"] == 75.0 and live.session_state["iou"] == 0.3
    finally:
        path.unlink(missing_ok=True)


def test_snapshot_opens_with_run_store_and_dataset_gone(dashboard_env, test_run, monkeypatch, tmp_path):
    """Save into a copy of the run store, delete everything but its snapshots, point the app at a run whose
    dataset does not exist: the live pages fail, the snapshot still opens with the same numbers."""
    from surgery_core.run.config import DataConfig

    shutil.copytree(dashboard_env["SURGERY_STORE"], tmp_path / "store")
    monkeypatch.setenv("SURGERY_STORE", str(tmp_path / "store"))
    at = goto(app(), "ap")
    ok(at)
    live = tables(at)[0].value
    live_caps = captions(at)
    meta = save(at, "AP before the store went")
    assert (tmp_path / "store" / "snapshots" / f"{meta.id}.snapshot.zip").is_file()

    for child in (tmp_path / "store").iterdir():
        if child.name != "snapshots":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    gone = test_run.cfg.model_copy(update={"data": DataConfig(kind="dior", root=str(tmp_path / "no-such-data"))})
    monkeypatch.setenv("SURGERY_DASHBOARD_CONFIG", gone.model_dump_json())
    assert any("cannot be opened" in e.value for e in goto(app(), "ap").error)  # the live view is gone

    again = open_link(meta.id)
    ok(again)
    table = next(d.value for d in again.dataframe if "class" in d.value.columns)
    assert list(table.columns) == list(live.columns)
    assert table.astype(str).equals(live.astype(str))
    assert all(c in captions(again) for c in live_caps if "AP per class" in c)
    metrics = {m.label: m.value for m in again.metric}
    assert set(metrics) == {m.label for m in at.metric}


# ------------------------------------------------------------------------------------------ list, delete, damage
def test_list_search_and_delete_with_confirmation(dashboard_env, test_run):
    at = goto(app(), "sweep")
    ok(at)
    first = save(at, "Sweep alpha", "tagged zebra")
    second = save(at, "Sweep beta")
    lst = goto(at, "snapshots")
    ok(lst)
    titles = [m.value for m in lst.markdown if m.value in ("**Sweep alpha**", "**Sweep beta**")]
    assert titles == ["**Sweep beta**", "**Sweep alpha**"]  # newest first
    lst.text_input(key="snap_q").set_value("zebra").run()
    assert [m.value for m in lst.markdown if m.value.startswith("**Sweep")] == ["**Sweep alpha**"]
    lst.text_input(key="snap_q").set_value("").run()

    path = store().path_of(first.id)
    lst.button(key=f"snap_del_{first.id}").click().run()
    assert path.is_file() and any(first.id in w.value for w in lst.warning)  # asks first
    lst.button(key=f"snap_del_no_{first.id}").click().run()
    assert path.is_file() and not lst.warning
    lst.button(key=f"snap_del_{first.id}").click().run()
    lst.button(key=f"snap_del_yes_{first.id}").click().run()
    ok(lst)
    assert not path.is_file() and any(first.id in s.value for s in lst.success)
    assert first.id not in {m.id for m in store().list()} and second.id in {m.id for m in store().list()}
    gone = open_link(first.id)
    assert not gone.exception and any("cannot be opened" in e.value for e in gone.error)


def test_damaged_and_other_version_files_are_listed(dashboard_env, test_run):
    at = goto(app(), "quality")
    good = save(at, "Quality good")
    root = store().root
    broken = root / "29990101T000000Z-broken-00000000.snapshot.zip"
    broken.write_bytes(b"PK\x03\x04 this is not a zip")
    old = root / "29990101T000001Z-old-00000001.snapshot.zip"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("snapshot.json", '{"schema": 0, "title": "from long ago"}')
    try:
        lst = goto(at, "snapshots")
        assert not lst.exception
        errors = [e.value for e in lst.error]
        assert any(broken.name[:-13] in e and "not a zip file" in e for e in errors), errors
        assert any(old.name[:-13] in e and "schema version 0 is older" in e for e in errors), errors
        lst.button(key=f"snap_open_{good.id}").click().run()
        ok(lst)
        assert lst.query_params["snapshot"] == good.id and "Quality good" in markdown(lst)
        assert len(lst.dataframe) >= 3
        bad = open_link(broken.name[:-13])
        assert not bad.exception and any("not a zip file" in e.value for e in bad.error)
    finally:
        broken.unlink(missing_ok=True)
        old.unlink(missing_ok=True)


def test_titles_and_ids_cannot_leave_the_folder(dashboard_env, test_run):
    at = goto(app(), "browse")
    meta = save(at, "../../etc/passwd", "note")
    root = store().root.resolve()
    path = store().path_of(meta.id)
    assert re.fullmatch(r"\d{8}T\d{6}Z-etc-passwd-[0-9a-f]{8}\.snapshot\.zip", path.name)
    assert path.resolve().parent == root and path.is_file()
    assert all(p.resolve().parent == root for p in root.iterdir())
    assert not (root.parent.parent / "etc").exists()
    assert store().load(meta.id).title == "../../etc/passwd"  # shown as typed, stored under a safe name
    assert len(store().load(meta.id).images) == len(at.image)  # the thumbnails on screen
    bad = open_link("../../etc/passwd")
    assert not bad.exception and any("not a snapshot id" in e.value for e in bad.error)


def test_every_page_can_be_snapshotted(dashboard_env, test_run):
    at = app()
    for page in ("browse", "ap", "quality", "run"):
        goto(at, page)
        n_tables, n_charts = len(tables(at)), len(at.get("plotly_chart"))
        meta = save(at, f"every page {page}")
        snap = store().load(meta.id)
        assert snap.state["page"] == page
        kinds = [b["kind"] for b in snap.numbers["blocks"]]
        assert kinds.count("table") == n_tables and kinds.count("chart") == n_charts, page
        assert "caption" in kinds
        shown = open_link(meta.id)
        ok(shown)
        assert len(shown.get("plotly_chart")) == n_charts, page


# ------------------------------------------------------------------------------------------ report
@pytest.fixture
def media(monkeypatch) -> list[tuple[bytes, str, str | None]]:
    """Every file handed to Streamlit's media storage (download buttons included): (data, mimetype, name)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen = []
    orig = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, (bytes, bytearray)):
            seen.append((bytes(path_or_data), mimetype, filename))
        return orig(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


SECTIONS = ("Run configuration", "mAP per method and protocol", "Per-class AP", "Threshold sweeps",
            "Heatmap quality and pointing game", "Every method on chosen samples")


def test_report_download_buttons(dashboard_env, test_run, media):
    from surgery_core.share.html import default_samples

    at = goto(app(), "run")
    ok(at)
    defaults = [test_run.dataset.images[i].image_id for i, _ in default_samples(test_run)]
    assert at.multiselect(key="report_samples").value == defaults
    assert not at.get("download_button")
    at.button(key="report_build").click().run()
    ok(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download HTML report", "Download .zip"]
    files = {name: data for data, _, name in media if name and name.startswith("surgery_report_")}
    html = files[f"surgery_report_{test_run.run_hash}.html"].decode()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html, title
    assert all(i in html for i in defaults)
    assert dashboard_env["SURGERY_STORE"] not in html  # paths cut by default
    with zipfile.ZipFile(io.BytesIO(files[f"surgery_report_{test_run.run_hash}.zip"])) as z:
        assert z.read("report.html").decode() == html
        assert "numbers/map_results.json" in z.namelist()

    media.clear()
    at.multiselect(key="report_samples").set_value([defaults[-1]]).run()
    assert not at.get("download_button")  # a new selection: build again
    at.button(key="report_build").click().run()
    ok(at)
    html = next(d for d, _, n in media if n and n.endswith(".html")).decode()
    assert defaults[-1] in html and defaults[0] not in html.split("Every method on chosen samples", 1)[1]
