"""Run settings opens a run by model name (Streamlit AppTest, in this process; the browser test of the picker's
download is ``test_model_picker_browser.py``)."""

from __future__ import annotations

from tests.dashboard.test_dashboard import app, ok


def test_picking_a_registered_model_opens_its_run_named_and_reuses_the_grids_of_its_file(dashboard_env, test_run,
                                                                                        tmp_path, monkeypatch):
    from surgery_core.files import content_sha256
    from surgery_core.model.local_models import register
    from surgery_core.run.config import RunConfig

    ckpt = test_run.cfg.model.checkpoint
    if ckpt is None:  # the test run uses the shipped demo weights
        from surgery_core.demo.model import DEMO_WEIGHTS

        ckpt = str(DEMO_WEIGHTS)
    monkeypatch.setenv("SURGERY_MODELS", str(tmp_path / "models"))
    register("lab-demo", test_run.cfg.model.arch, ckpt, test_run.cfg.model.quickgelu, content_sha256(ckpt), 1, 224)
    from dashboard import model_picker

    model_picker.rows.clear()  # the picker's list is cached for 10 s: an app test just before may have filled it
    at = app()
    ok(at)
    picker = next(b for b in at.sidebar.selectbox if b.label == "Model")
    labels = list(picker.options)
    assert "✓ lab-demo · " + test_run.cfg.model.arch + " · on this machine" in labels, labels
    assert any(o.startswith("↓ remoteclip-b32 · ") for o in labels), labels
    at.session_state["f_model"] = "lab-demo"  # as a pick does (AppTest cannot pick through a label formatter)
    at.run()
    assert any("lab-demo (registered)" in c.value and "registered file" in c.value for c in at.sidebar.caption)
    at.get("form_submit_button")[0].click().run()
    ok(at)
    want = RunConfig.model_validate(test_run.cfg.model_dump() | {"model": {"name": "lab-demo"}})
    assert want.model.arch == test_run.cfg.model.arch and want.run_hash != test_run.run_hash
    assert at.query_params["h"] == want.run_hash
    assert any("lab-demo (" + test_run.cfg.model.arch + ")" in c.value for c in at.sidebar.caption)
    # the same file under a name: the heatmap key is the file's, so no grid was computed again
    assert not any("heatmaps computed" in s.value for s in at.success)
