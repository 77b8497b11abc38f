"""The percentile and IoU controls reach what the metrics allow, and the method choice is one setting (issue 21,
points 5 and 9), through ``streamlit.testing.v1.AppTest`` on the dashboard tests' run (``conftest.py``).

Values off the run's stored grids (percentile 99.9, IoU 0.95) are computed, never snapped or looked up: every
number checked here equals the library's own ``Run.ap`` at that cell."""

from __future__ import annotations

import pytest
from tests.dashboard.test_dashboard import app, goto, ok, tables

from surgery_core.model.methods import METHODS


def metric_values(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.mark.parametrize("page", ["compare", "ap", "sweep"])
def test_the_controls_reach_iou_095_and_percentile_999(dashboard_env, test_run, page):
    at = goto(app(), page)
    ok(at)
    assert at.select_slider(key="iou").options[-1] == "0.95"
    assert at.select_slider(key="p").options[-1] == "p99.9"
    at.select_slider(key="iou").set_value(0.95).run()
    at.select_slider(key="p").set_value(99.9).run()
    ok(at)
    assert at.select_slider(key="iou").value == 0.95 and at.select_slider(key="p").value == 99.9
    assert at.query_params["p"] == "99.9" and at.query_params["iou"] == "0.95"


def test_the_sweep_computes_a_cell_off_its_stored_grid(dashboard_env, test_run):
    at = goto(app(), "sweep")
    stored = metric_values(at)
    p0, iou0 = at.select_slider(key="p").value, at.select_slider(key="iou").value
    for m, v in stored.items():  # on the grid: the stored sweep, equal to the cell scored alone
        assert v == f"{test_run.ap(m, 'present', 'voc07', p0, iou0).mAP:.4f}", m
    assert "outside the stored sweep" not in captions(at)
    at.select_slider(key="p").set_value(99.9).run()
    at.select_slider(key="iou").set_value(0.95).run()
    ok(at)
    shown = metric_values(at)
    assert set(shown) == set(stored)
    for m, v in shown.items():
        assert v == f"{test_run.ap(m, 'present', 'voc07', 99.9, 0.95).mAP:.4f}", m
    assert "p99.9 and IoU 0.95 are outside the stored sweep" in captions(at)
    heading = "\n".join(m.value for m in at.markdown)
    assert "mAP at percentile 99.9, IoU 0.95" in heading and "vs IoU threshold** at percentile 99.9" in heading
    seed = tables(at)[0].value  # the seed's table gains the IoU asked for, computed
    assert "IoU 0.95" in seed.columns
    for _, row in seed.iterrows():
        assert row["IoU 0.95"] == pytest.approx(test_run.ap(row["method"], "present", "voc07", 99.9, 0.95).mAP,
                                                abs=1e-12)


def test_an_old_link_still_opens_its_view(dashboard_env, test_run):
    ids = [test_run.dataset.images[i].image_id for i in test_run.grids.rows]
    at = app({"page": "sweep", "p": "85", "iou": "0.3", "methods": "standard,vv_mixed"})
    ok(at)
    assert at.select_slider(key="p").value == 85.0 and at.select_slider(key="iou").value == 0.3
    assert set(metric_values(at)) == {"standard", "vv_mixed"}
    at = app({"page": "explore", "sample": ids[1], "xm": "gem,vv_vv"})  # Explore's own methods, before 21.9
    ok(at)
    assert at.button_group(key="methods").value == ["vv_vv", "gem"]
    assert "xm" not in at.query_params and at.query_params["methods"] == "vv_vv,gem"


def test_the_method_choice_is_one_setting_across_pages(dashboard_env, test_run):
    at = goto(app(), "compare")
    at.button(key="methods_all").click().run()
    ok(at)
    every = list(test_run.cfg.methods)
    assert at.button_group(key="methods").value == every
    goto(at, "explore")
    ok(at)
    assert at.button_group(key="methods").value == [m for m in METHODS if m in every]
    at.button_group(key="methods").set_value(["standard", "gem", "sclip"]).run()
    goto(at, "quality")
    assert at.button_group(key="methods").value == [m for m in every if m in ("standard", "gem", "sclip")]
    goto(at, "ap")
    assert {m.label.split()[1] for m in at.metric if m.label.startswith("mAP")} == {"standard", "gem", "sclip"}


def test_a_page_override_is_said_where_the_boxes_are_on_every_page(dashboard_env, test_run):
    own = test_run.cfg.boxes.percentile
    at = goto(app(), "compare")
    at.select_slider(key="p").set_value(99.9).run()
    for page in ("compare", "ap", "sweep"):
        goto(at, page)
        ok(at)
        assert at.select_slider(key="p").value == 99.9, page
        assert f"page setting p99.9, not the run's p{own:g}" in captions(at), page
        assert at.button(key="p_back").label == f"Run's p{own:g}", page
    at.button(key="p_back").click().run()
    for page in ("sweep", "ap", "compare"):
        goto(at, page)
        assert at.select_slider(key="p").value == own and "page setting" not in captions(at), page
