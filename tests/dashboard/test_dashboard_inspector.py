"""The attention inspector on Compare and Explore (AppTest): nothing is computed until it is opened; opened, it
draws one figure per method that changes a block and one for the vanilla tower, and says how."""

from __future__ import annotations

from tests.dashboard.test_dashboard import app, goto, ok
from tests.dashboard.test_explore_page import app as explore_app

import surgery_core.run.explore as explore_mod


def _calls(monkeypatch):
    calls = []
    real = explore_mod.inspect_patch

    def spy(*a, **kw):
        calls.append(a[3])
        return real(*a, **kw)

    monkeypatch.setattr(explore_mod, "inspect_patch", spy)
    return calls


def test_compare_inspector_rows_on_request(dashboard_env, test_run, monkeypatch):
    calls = _calls(monkeypatch)
    at = goto(app(), "compare")
    ok(at)
    charts_before = len(at.get("plotly_chart"))
    assert calls == []  # closed: no row computed
    at.toggle(key="c_insp_on").set_value(True).run()
    ok(at)
    assert calls == [(3, 3)]  # the middle patch of the demo model's 7x7 grid
    # seed four: standard changes no block; vv_qk neither; vv_vv and vv_mixed do; plus the vanilla tower
    assert len(at.get("plotly_chart")) == charts_before + 3
    text = " ".join(c.value for c in at.caption)
    assert "Patch row 3, column 3 of the 7x7 grid" in text and "averaged over heads" in text
    assert "`standard` (no block changed: the vanilla tower)" in text
    at.number_input(key="c_insp_row").set_value(0).run()
    ok(at)
    assert calls[-1] == (0, 3)


def test_explore_inspector_follows_the_page_resolution(dashboard_env, test_run, monkeypatch):
    calls = _calls(monkeypatch)
    at = explore_app({"xq": "airplane", "xsize": "448", "methods": "vv_mixed,naclip"})
    ok(at)
    at.toggle(key="x_insp_on").set_value(True).run()
    ok(at)
    assert calls == [(7, 7)]  # 448 px: a 14x14 grid
    text = " ".join(c.value for c in at.caption)
    assert "each method's official resize" in text and "2 tower passes" in text
