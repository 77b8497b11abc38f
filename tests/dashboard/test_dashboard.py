"""The Streamlit dashboard through ``streamlit.testing.v1.AppTest``: every page, the main interactions, permalinks.

The app runs on a small demo run, the fixtures ``dashboard_env`` and ``test_run`` of ``conftest.py`` (the first
``DASHBOARD_LIMIT`` test scenes; the shipped demo weights when present, else a random-weight checkpoint).
``SURGERY_CACHE``/``SURGERY_STORE`` point into pytest's temporary folder, so nothing is written to ``~``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest

from surgery_core.eval.protocols import Cell
from surgery_core.model.methods import SEED_METHODS  # what Compare shows by default

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")
PAGES = ("browse", "compare", "ap", "sweep", "quality", "run")
def app(query: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=90)
    if query:
        at.query_params.update(query)
    return at.run()


def goto(at, page: str):
    return at.switch_page(f"views/{page}.py").run()


def tables(at) -> list:
    """Every table of the main area in page order: ``widgets.table`` draws a small one as plain HTML (``st.table``)
    and a large one, or one with column settings, as the interactive grid (``st.dataframe``)."""
    return [e for e in at.main if e.type in ("dataframe", "table")]


def ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


# ------------------------------------------------------------------------------------------ every page
def test_every_page_renders(dashboard_env, test_run):
    at = app()
    ok(at)
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert test_run.run_hash in sidebar
    assert at.query_params["h"] == test_run.run_hash
    assert len(at.image) == 24  # one page of thumbnails
    for page in PAGES[1:]:
        goto(at, page)
        ok(at)
        assert at.query_params["page"] == page
    goto(at, "compare")
    assert len(at.image) == 2 + len(SEED_METHODS)  # the image, one per method shown (the seed's four), the colour bar
    goto(at, "ap")
    # AP per class and CorLoc per class; mAP and CorLoc of each method
    assert len(tables(at)) == 2 and len(at.metric) == 2 * len(SEED_METHODS)
    assert not at.dataframe  # both small: plain HTML (widgets.table)
    goto(at, "sweep")
    assert len(tables(at)) == 1
    goto(at, "quality")
    assert len(tables(at)) == 5  # the seed's three, CorLoc, the object-size mix
    goto(at, "run")
    assert test_run.run_hash in markdown(at)


def test_every_number_says_how_it_was_computed(dashboard_env):
    at = app()
    for page in PAGES[1:5]:
        goto(at, page)
        captions = "\n".join(c.value for c in at.caption)
        assert "run " in captions, page
        if page in ("compare", "ap"):
            assert "boxes: percentile" in captions and "IoU" in captions and "protocol present" in captions
        if page in ("ap", "sweep"):
            assert "VOC2007 11-point" in captions


# ------------------------------------------------------------------------------------------ compare
def test_compare_controls_redraw(dashboard_env, test_run):
    at = goto(app(), "compare")
    before = [im.proto.imgs[0].url for im in at.image]
    text_before = markdown(at)
    at.select_slider(key="p").set_value(50.0).run()
    ok(at)
    assert at.query_params["p"] == "50"
    assert markdown(at) != text_before or [im.proto.imgs[0].url for im in at.image] != before
    at.select_slider(key="iou").set_value(0.5).run()
    assert at.query_params["iou"] == "0.5"
    at.slider(key="alpha").set_value(0.8).run()
    assert at.query_params["alpha"] == "0.8"
    at.segmented_control(key="proto").set_value("open").run()
    ok(at)
    assert "protocol open" in "\n".join(c.value for c in at.caption)
    at.toggle(key="raw").set_value(True).run()
    ok(at)
    assert len(at.get("plotly_chart")) == len(SEED_METHODS)


def test_compare_previous_next_and_class(dashboard_env, test_run):
    at = goto(app(), "compare")
    ids = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    assert at.selectbox(key="sample").value == ids[0]
    at.button(key="next").click().run()
    assert at.selectbox(key="sample").value == ids[1]
    assert at.query_params["sample"] == ids[1]
    rec = test_run.dataset.images[test_run.grids.rows[1]]
    assert at.selectbox(key="cls").value in {test_run.classes[c] for c in rec.labels}
    at.button(key="prev").click().run()
    at.button(key="prev").click().run()
    assert at.selectbox(key="sample").value == ids[-1]
    absent = next(c for c in test_run.classes
                  if c not in {test_run.classes[k] for k in test_run.dataset.images[test_run.grids.rows[-1]].labels})
    at.selectbox(key="cls").set_value(absent).run()
    ok(at)
    assert "class absent" in markdown(at)


def test_compare_shows_class_probability_and_pointing(dashboard_env, test_run):
    at = goto(app({"sample": test_run.dataset.images[test_run.grids.rows[2]].image_id}), "compare")
    image = test_run.grids.rows[2]
    cls = test_run.classes.index(at.selectbox(key="cls").value)
    prob = test_run.grids.probs[test_run.row_of(image), cls]
    text = markdown(at)
    assert f"= {prob:.3f}" in text
    assert text.count("pointing hit") + text.count("pointing miss") == len(SEED_METHODS)


def test_compare_panel_matches_library(dashboard_env, test_run):
    """Box labels come from the library: boxes_for at the percentile, greedy matching at the IoU."""
    from dashboard import data
    from surgery_core.eval.matching import box_iou

    image = int(test_run.grids.rows[0])
    rec = test_run.dataset.images[image]
    cls = int(rec.labels[0])
    info = data.panel(data.run_key(test_run), Cell.of("vv_mixed", "present", 75.0), image, cls, 0.1, test_run)
    live = test_run.boxes_for("vv_mixed", image, cls, 75.0, "present")
    xyxy, score = live.xyxy, live.score
    np.testing.assert_array_equal(info.det.xyxy, xyxy)
    np.testing.assert_array_equal(info.det.score, score)
    gt = rec.xyxy[rec.labels == cls]
    if len(xyxy):
        np.testing.assert_allclose(info.det.extra["iou"], box_iou(xyxy, gt).max(axis=1))
        assert info.det.extra["tp"].sum() <= len(gt)


def test_cached_views_are_keyed_by_cell_value(dashboard_env, test_run, monkeypatch):
    """A Cell is the dashboard caches' key, hashed by value: two equal cells built apart (a protocol by name or by
    record, a percentile as int or float) hit one entry; another method, protocol or cut (a percentile, a fixed
    value, Otsu) is another entry."""
    from dashboard import data
    from surgery_core.eval.boxes import BoxRule
    from surgery_core.eval.protocols import PRESENT
    from surgery_core.run import pairs

    key = data.run_key(test_run)
    image = int(test_run.grids.rows[0])
    cls = int(test_run.dataset.images[image].labels[0])
    a, b = Cell.of("vv_mixed", "present", 75), Cell.of("vv_mixed", PRESENT, 75.0)
    assert a == b and a is not b and hash(a) == hash(b)
    first = data.panel(key, a, image, cls, 0.1, test_run)
    assert data.panel(key, b, image, cls, 0.1, test_run) is first  # cache_resource: the very object, not recomputed
    others = [Cell.of("standard", "present", 75.0), Cell.of("vv_mixed", "open", 75.0),
              Cell.of("vv_mixed", "present", 80.0), Cell.of("vv_mixed", "present", BoxRule("fixed", 0.5)),
              Cell.of("vv_mixed", "present", BoxRule("fixed", 0.6)), Cell.of("vv_mixed", "present", BoxRule("otsu"))]
    drawn = [data.panel(key, c, image, cls, 0.1, test_run) for c in others]
    assert all(d is not first for d in drawn) and len({id(d) for d in drawn}) == len(others)
    assert [d.method for d in drawn] == [c.method for c in others]

    calls = []
    real = pairs.pair_outcomes
    monkeypatch.setattr(pairs, "pair_outcomes", lambda run, cell, iou, quality=None: calls.append(cell) or
                        real(run, cell, iou, quality))
    data.pair_outcomes.clear()
    data.pair_outcomes(key, a, 0.1, test_run)
    data.pair_outcomes(key, b, 0.1, test_run)  # equal cell: served from the cache
    assert calls == [a]
    data.pair_outcomes(key, Cell.of("vv_mixed", "open", 75.0), 0.1, test_run)
    data.pair_outcomes(key, Cell.of("vv_mixed", "present", BoxRule("fixed", 0.5)), 0.1, test_run)
    assert calls == [a, Cell.of("vv_mixed", "open", 75.0), Cell.of("vv_mixed", "present", BoxRule("fixed", 0.5))]


# ------------------------------------------------------------------------------------------ browse
def test_browse_filters_and_open_in_compare(dashboard_env, test_run):
    at = app()
    name = test_run.classes[int(test_run.gt.class_id[0])]
    at.multiselect(key="bcls").set_value([name]).run()
    ok(at)
    expected = sum(name in {test_run.classes[c] for c in test_run.dataset.images[i].labels}
                   for i in test_run.grids.rows)
    assert f"**{expected}** of {len(test_run.grids.rows)} samples" in markdown(at)
    at.multiselect(key="bcls").set_value([]).run()
    first = test_run.dataset.images[test_run.grids.rows[3]].image_id
    at.text_input(key="q").set_value(first).run()
    assert len(at.image) == 1 and at.query_params["q"] == first
    at.text_input(key="q").set_value("").run()
    at.selectbox(key="bout").set_value("miss").run()
    ok(at)
    assert at.query_params["bout"] == "miss"
    captions = [c.value for c in at.caption]
    assert any("IoU" in c and "TP" in c for c in captions)
    opens = [b for b in at.button if b.key and b.key.startswith("open_")]
    assert opens
    target = opens[0].label
    opens[0].click().run()
    ok(at)
    assert at.query_params["page"] == "compare"
    assert at.selectbox(key="sample").value == target


def test_browse_outcomes_match_matching(dashboard_env, test_run):
    """The outcome table counts TPs exactly as AP does (greedy matching over the whole run)."""
    from dashboard import data
    from surgery_core.eval.matching import match_detections

    df = data.pair_outcomes(data.run_key(test_run), Cell.of("standard", "present", 90.0), 0.1, test_run)
    det = match_detections(test_run.gt, test_run.detections("standard", "present", 90.0), 0.1)
    assert int(df["n_tp"].sum()) == int(det.extra["tp"].sum())
    assert int(df["n_gt"].sum()) == len(test_run.gt)
    assert df["best_iou"].between(0, 1).all()


def test_browse_object_count_and_paging(dashboard_env, test_run):
    at = app()
    counts = [test_run.dataset.images[i].num_objects for i in test_run.grids.rows]
    lo = min(counts)
    at.slider(key="bn").set_value((lo, lo)).run()
    ok(at)
    assert f"**{counts.count(lo)}** of" in markdown(at)
    at.slider(key="bn").set_value((min(counts), max(counts))).run()
    at.number_input(key="bpage").set_value(2).run()
    ok(at)
    assert at.query_params["bpage"] == "2"
    assert len(at.image) == min(24, len(counts) - 24)


# ------------------------------------------------------------------------------------------ AP, sweep, quality
def test_ap_table_numbers_and_csv(dashboard_env, test_run):
    at = goto(app(), "ap")
    at.segmented_control(key="interp").set_value("voc").run()
    at.select_slider(key="iou").set_value(0.3).run()
    ok(at)
    table = tables(at)[0].value
    res = test_run.ap("vv_mixed", "present", "voc", 90.0, 0.3)
    assert table["class"].iloc[-1] == "mAP"
    assert table["vv_mixed"].iloc[-1] == pytest.approx(res.mAP, nan_ok=True)
    cls_rows = table.iloc[:-1]
    for _, row in cls_rows.iterrows():
        k = test_run.classes.index(row["class"])
        assert row["vv_mixed"] == pytest.approx(res.per_class_ap[k], nan_ok=True)
        assert row["GT"] == res.n_gt[k]
    assert "VOC2010+ all-point" in "\n".join(c.value for c in at.caption)
    # the table's CSV and the boxes behind it (COCO + CSV zip)
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV", "Download the boxes (COCO + CSV, zip)"]
    at.segmented_control(key="interp").set_value("coco").run()
    at.toggle(key="coco95").set_value(True).run()
    ok(at)
    head = test_run.ap("vv_mixed", "present", "coco", 90.0, tuple(np.linspace(0.5, 0.95, 10)))
    assert tables(at)[0].value["vv_mixed"].iloc[-1] == pytest.approx(head.mAP, nan_ok=True)
    assert at.query_params["coco95"] == "1"


def test_ap_csv_content(dashboard_env, test_run):
    from dashboard import data
    from surgery_core.run import pairs

    results = {m: data.ap_result(test_run, Cell.of(m, "open", 75.0), "voc07", 0.05) for m in test_run.cfg.methods}
    table = pairs.ap_table(results, test_run.classes)
    rows = list(csv.DictReader(io.StringIO(table.to_csv(index=False))))
    assert rows[-1]["class"] == "mAP"
    assert set(test_run.cfg.methods) <= set(rows[0])


def test_sweep_per_class_view(dashboard_env, test_run):
    at = goto(app(), "sweep")
    ok(at)
    seed = tables(at)[0].value
    sweep = test_run.sweep()
    pi = sweep.percentiles.index(90.0)
    assert list(seed["method"]) == list(SEED_METHODS)  # the methods shown by default
    for m in SEED_METHODS:
        row = seed[seed["method"] == m].iloc[0]
        assert row["IoU 0.05"] == pytest.approx(sweep.cell(m, "present", "voc07").map[pi][0], nan_ok=True)
    cls = test_run.classes[int(test_run.gt.class_id[0])]
    at.selectbox(key="sc").set_value(cls).run()
    ok(at)
    assert at.query_params["sc"] == cls
    assert f"AP of {cls}" in markdown(at)


def test_quality_tables(dashboard_env, test_run):
    at = goto(app(), "quality")
    ok(at)
    q = test_run.quality()
    table = tables(at)[0].value
    first = q.methods["standard"].by_percentile[0]
    row = table[(table["method"] == "standard") & (table["percentile"] == first["percentile"])].iloc[0]
    assert row["mean best IoU"] == pytest.approx(first["mean_best_iou"])
    assert len(at.get("plotly_chart")) == 5


# ------------------------------------------------------------------------------------------ permalinks
def test_config_encoding_roundtrip():
    from dashboard.permalink import decode_config, encode_config
    from surgery_core.eval.boxes import BoxParams
    from surgery_core.run.config import DataConfig, InputConfig, ModelConfig, RunConfig

    assert encode_config(RunConfig()) == ""
    assert decode_config("") == RunConfig()
    cfg = RunConfig(data=DataConfig(kind="dior", root="/data/DIOR", split="val", limit=500),
                    model=ModelConfig(arch="ViT-B-32", checkpoint="/w/RemoteCLIP-ViT-B-32.pt", quickgelu=True),
                    input=InputConfig(size=448, window=224, stride=112), methods=("standard", "vv_mixed"),
                    boxes=BoxParams(percentile=75, nms_iou=0.5, box_resolution=None))
    code = encode_config(cfg)
    assert len(code) < 400 and all(c.isalnum() or c in "-_" for c in code)
    assert decode_config(code) == cfg and decode_config(code).run_hash == cfg.run_hash
    with pytest.raises(ValueError):
        decode_config("not-a-config")


def test_permalink_reopens_the_same_view(dashboard_env, test_run):
    at = goto(app(), "compare")
    at.button(key="next").click().run()
    at.select_slider(key="p").set_value(75.0).run()
    at.select_slider(key="iou").set_value(0.3).run()
    at.pills(key="methods").set_value(["standard", "vv_mixed"]).run()
    link = dict(at.query_params)
    assert link["page"] == "compare" and link["h"] == test_run.run_hash
    again = app(link)  # a new session opened on the root URL with the link's parameters
    ok(again)
    assert again.query_params == link
    assert again.selectbox(key="sample").value == link["sample"]
    assert again.select_slider(key="p").value == 75.0
    assert again.select_slider(key="iou").value == 0.3
    assert len(again.image) == 4  # image + two methods + the colour bar


def test_link_to_another_run_and_bad_links(dashboard_env, test_run):
    from dashboard.permalink import encode_config

    other = test_run.cfg.model_copy(update={"data": test_run.cfg.data.model_copy(update={"limit": 12})})
    at = app({"run": encode_config(other), "h": other.run_hash})
    ok(at)
    assert other.run_hash in "\n".join(m.value for m in at.sidebar.markdown)
    assert at.query_params["h"] == other.run_hash
    bad = app({"run": "garbage!", "h": "123"})
    assert not bad.exception
    assert any("Could not read the run" in w.value for w in bad.warning)
    stale = app({"run": encode_config(other), "h": "000000000000"})
    assert any("made for run 000000000000" in w.value for w in stale.warning)


def test_a_links_page_parameters_wait_for_their_page(dashboard_env, test_run):
    """A page declares its own URL parameters when it runs: a link's parameter for another page stays in the URL
    until that page opens and takes it; a bad value is ignored with a warning."""
    at = app({"page": "browse", "xq": "airplane"})
    ok(at)
    assert at.query_params["xq"] == "airplane"
    at = goto(at, "explore")
    assert at.text_input(key="xq").value == "airplane"
    assert at.query_params["xq"] == "airplane"
    bad = goto(app({"page": "browse", "cols": "many"}), "compare")
    assert not bad.exception
    assert any("Ignored URL parameter cols='many'" in w.value for w in bad.warning)


def test_run_says_what_is_cached(test_run, tmp_path):
    """``Run.is_cached``/``is_loaded``: the dashboard asks these instead of looking into the run folder."""
    from surgery_core.run.facade import PRODUCTS, Run
    from surgery_core.run.store import RunStore

    assert all(test_run.is_cached(p) for p in PRODUCTS)  # conftest computed every product
    assert not test_run.is_loaded("ap_tables")  # tables are read from their file on each call
    fresh = Run(test_run.cfg, RunStore(tmp_path), test_run.dataset, test_run.grids, test_run.model_identity,
                test_run.model_note)
    assert not any(fresh.is_cached(p) for p in PRODUCTS) and not fresh.is_loaded("boxes")
    fresh.ap_tables()
    # the tables cut the boxes of the run's own percentile only (issue 17: box cells are cut when first needed)
    assert fresh.is_cached("ap_tables") and fresh.is_loaded("boxes") and not fresh.is_cached("boxes")
    assert not fresh.is_cached("sweep")
    fresh.sweep()
    assert fresh.is_cached("sweep") and fresh.is_cached("boxes")
    with pytest.raises(KeyError, match="unknown run product 'tables'"):
        fresh.is_cached("tables")


# ------------------------------------------------------------------------------------------ run selection
def test_sidebar_form_opens_a_new_run_with_progress(dashboard_env, test_run):
    at = app()
    at.number_input(key="f_limit").set_value(6)  # form widgets: committed by the submit button
    at.selectbox(key="f_split").set_value("val")
    at.number_input(key="f_pct").set_value(80.0)
    at.get("form_submit_button")[0].click().run()
    ok(at)
    new = test_run.cfg.model_copy(update={
        "data": test_run.cfg.data.model_copy(update={"limit": 6, "split": "val"}),
        "boxes": test_run.cfg.boxes.model_copy(update={"percentile": 80.0})})
    assert at.query_params["h"] == new.run_hash
    assert new.run_hash in "\n".join(m.value for m in at.sidebar.markdown)
    assert any("heatmaps computed for 6 images" in s.value for s in at.success)
    assert len(at.image) == 6
    at.run()  # the run is cached now: no note, no work
    assert not at.success
    back = [b for b in at.sidebar.button if "default run" in b.label][0]
    back.click().run()
    assert at.query_params["h"] == test_run.run_hash


def test_invalid_form_values_are_reported(dashboard_env):
    at = app()
    at.text_input(key="f_arch").set_value("No-Such-Arch")
    at.get("form_submit_button")[0].click().run()
    assert not at.exception
    assert any("No-Such-Arch" in e.value or "cannot be opened" in e.value for e in at.error)


def test_model_note_is_shown_for_real_imagery(dashboard_env, test_run):
    from dashboard.permalink import encode_config

    cfg = test_run.cfg.model_copy(update={"data": test_run.cfg.data.model_copy(update={"kind": "samples",
                                                                                         "limit": None})})
    at = app({"run": encode_config(cfg)})
    assert not at.exception
    assert any("Model/data mismatch" in e.value for e in at.error)


def test_no_configuration_opens_the_demo_run(dashboard_env, monkeypatch):
    """No run parameter, no $SURGERY_DASHBOARD_CONFIG: the demo run (RunConfig()), or, before the demo weights
    exist, a message saying how to get them."""
    from surgery_core.demo.model import DEMO_WEIGHTS
    from surgery_core.run.config import RunConfig

    monkeypatch.delenv("SURGERY_DASHBOARD_CONFIG")
    at = app()
    assert not at.exception
    assert at.query_params["h"] == RunConfig().run_hash and "run" not in at.query_params
    if DEMO_WEIGHTS.is_file():
        ok(at)
        assert RunConfig().run_hash in "\n".join(m.value for m in at.sidebar.markdown)
        assert len(at.image) == 24
    else:
        assert any("cannot be opened" in e.value for e in at.error)
        assert any("demo weights are not installed" in i.value for i in at.info)


def test_data_roots_refuse_paths_outside(dashboard_env, test_run, monkeypatch, tmp_path):
    """With $SURGERY_DATA_ROOTS set, a link naming data elsewhere is refused, even when the run is open."""
    from dashboard.permalink import encode_config
    from surgery_core.demo import demo_data_root

    root = demo_data_root()  # the demo scenes, named by path: same images, so the stored grids are reused
    cfg = test_run.cfg.model_copy(update={"data": test_run.cfg.data.model_copy(update={"root": str(root)})})
    link = {"run": encode_config(cfg)}
    assert not app(link).error  # open in this process now
    monkeypatch.setenv("SURGERY_DATA_ROOTS", str(tmp_path))
    at = app(link)
    assert not at.exception
    assert any("outside the configured data roots" in e.value for e in at.error), [e.value for e in at.error]
    monkeypatch.setenv("SURGERY_DATA_ROOTS", os.pathsep.join([str(tmp_path), dashboard_env["SURGERY_CACHE"]]))
    assert not app(link).error


# ------------------------------------------------------------------------------------------ issue 15
def form_values(at) -> dict:
    keys = ("f_kind", "f_split", "f_limit", "f_arch", "f_methods", "f_depth", "f_pct", "f_kernel", "f_res")
    return {k: at.session_state[k] for k in keys}


def test_run_settings_survive_a_page_without_the_form(dashboard_env, test_run):
    """Snapshots draws no sidebar form, so Streamlit forgets its widgets; the form comes back unchanged and
    opens the same run (issue 15: it came back empty and 'Open run' ended in an IndexError traceback)."""
    at = goto(app(), "compare")
    before = form_values(at)
    assert before["f_arch"] == test_run.cfg.model.arch and before["f_methods"] == list(test_run.cfg.methods)
    goto(at, "snapshots")
    goto(at, "compare")
    ok(at)
    assert form_values(at) == before
    at.get("form_submit_button")[0].click().run()
    ok(at)
    assert at.query_params["h"] == test_run.run_hash


def test_empty_required_fields_are_refused_in_one_line(dashboard_env, test_run):
    at = app()
    at.text_input(key="f_arch").set_value(" ")
    at.multiselect(key="f_methods").set_value([])
    at.get("form_submit_button")[0].click().run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert any("Architecture is empty" in e and "pick at least one" in e for e in errors), errors
    assert at.query_params["h"] == test_run.run_hash  # the open run stays


def test_sidebar_names_the_pages_percentile(dashboard_env, test_run):
    at = goto(app(), "compare")
    at.select_slider(key="p").set_value(75.0).run()
    ok(at)
    caption = "\n".join(c.value for c in at.sidebar.caption)
    assert "boxes p75 on this page (run: p90)" in caption, caption
    goto(at, "run")  # no percentile on this page: the run's own
    assert "boxes p90" in "\n".join(c.value for c in at.sidebar.caption)


def test_a_class_the_new_run_cannot_show_falls_back_and_says_so(dashboard_env, test_run):
    """Compare on a demo sample, then the 5 real DIOR samples: the demo's sample and class are not honoured
    silently (issue 15: 'groundtrackfield (1 GT)' on a golffield image, 'class absent' in every panel)."""
    at = goto(app(), "compare")
    cls = at.selectbox(key="cls").value
    at.selectbox(key="f_kind").set_value("samples")
    at.number_input(key="f_limit").set_value(0)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception
    notes = [i.value for i in at.info]
    assert any("is not in run" in n for n in notes), notes
    shown = at.selectbox(key="cls").value
    assert any(f"Class {cls} (from the previous view) has no ground truth" in n and f"showing {shown}" in n
               for n in notes), notes
    assert "class absent" not in markdown(at)
    at.selectbox(key="cls").set_value("airplane").run()  # a deliberate choice of an absent class stays
    assert at.selectbox(key="cls").value == "airplane"
    assert not [i for i in at.info if "from the previous view" in i.value]  # only the run's adopted settings stay said


def test_run_page_tables_and_link(dashboard_env, test_run):
    at = goto(app({"sample": test_run.dataset.images[test_run.grids.rows[2]].image_id, "bout": "miss"}), "run")
    ok(at)
    headline = tables(at)[0].value
    assert "AP .50:.95" not in headline.columns and not headline.isna().any().any()
    coco = next(d.value for d in tables(at) if any(c.startswith("AP .50:.95") for c in d.value.columns))
    entry = test_run.ap_tables().entry("vv_mixed", "present", "coco").map_50_95
    assert coco.set_index("method").loc["vv_mixed", "AP .50:.95 present"] == pytest.approx(entry)
    text = markdown(at)
    assert "| **boxes** |" in text and "percentile 90" in text and "None" not in text
    link = next(c.value for c in at.code if "h=" in c.value)
    assert f"h={test_run.run_hash}" in link and "page=run" in link
    assert "sample=" not in link and "bout=" not in link


def test_a_failing_page_shows_one_line_not_a_traceback(dashboard_env, monkeypatch):
    """The last line of defence: an unexpected exception inside a page (here a library call) is one error line
    naming its kind and message; the other pages still work."""
    from dashboard import data

    def boom(*a, **k):
        raise RuntimeError("simulated library failure\nsecond line")

    monkeypatch.setattr(data, "ap_result", boom)
    at = goto(app(), "ap")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("This page failed" in e and "RuntimeError: simulated library failure" in e for e in errors), errors
    assert not any("second line" in e or "Traceback" in e for e in errors)
    goto(at, "compare")
    ok(at)
