"""A stored run computed with random weights (``surgery evaluate --random-weights``) opens in the Runs page's
cross-run view, labelled as random weights with no best pair marked, instead of failing for want of a checkpoint
(issue 21, point 1 on the Runs page). AppTest on a store of its own."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import environ

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def test_a_random_weights_run_opens_in_the_cross_run_view_labelled(tmp_path, test_run):
    from streamlit.testing.v1 import AppTest

    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    env = {"SURGERY_CACHE": str(tmp_path / "cache"), "SURGERY_STORE": str(tmp_path / "store")}
    with environ(env, also=("SURGERY_DASHBOARD_CONFIG",)):
        cfg = RunConfig(data=DataConfig(limit=2), model=ModelConfig(arch="ViT-B-32"),
                        methods=("standard", "vv_mixed"))
        run = Run.open(cfg, RunStore(tmp_path / "store"), random_weights=True)
        assert run.random_weights
        os.environ["SURGERY_DASHBOARD_CONFIG"] = test_run.cfg.model_dump_json()
        at = AppTest.from_file(APP, default_timeout=180)
        at.query_params.update({"page": "runs"})
        at.run()
        at.switch_page("views/runs.py").run()
        assert not at.exception, [e.message for e in at.exception]
        folder = run.run_dir.name
        at.session_state["pairs"] = [f"{folder}:standard", f"{folder}:vv_mixed"]
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and f"Random weights: run {run.title()}" in errors[0], errors
        assert len(at.image) == 4  # the image with its GT, the two pairs, the colour scale
        captions = "\n".join(c.value for c in at.caption)
        assert "No best pair marked: a run has random weights" in captions and "★ and bold" not in captions
