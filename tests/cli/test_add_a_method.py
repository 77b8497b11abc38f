"""Adding a method is one block of code, outside the package: a throwaway method registered from this test file is
computed end to end, by the command line (``--methods``), under its own run-store key, and shown by the
dashboard's Compare page as a panel of its own (docs/DESIGN.md, "Adding a method")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery_core.model.attention import score_cosine, softmax_row
from surgery_core.model.methods import (
    METHODS,
    PATHS,
    Method,
    Source,
    TokenPath,
    register_method,
    register_path,
    unregister_method,
)

CALLS: list[int] = []


# ---- the whole method: an attention variant, its inspector rows, its path and its record --------------------
def attn_kk(q, k, v, ctx):
    """softmax(k k^T s) v: NACLIP's attention without its neighbourhood prior."""
    CALLS.append(q.shape[0])
    return ctx.self_attn("k")


def rows_kk(q, k, v, ctx, i):
    return softmax_row(k, k, i)


@pytest.fixture()
def kk_probe():
    register_path(TokenPath("kk_probe", attn_kk, "last", residual=False, ffn=False, rows=rows_kk))
    register_method(Method("kk_probe", "kk_probe", "own", score_cosine,
                           "Test probe: last block softmax(kk^T), no residual, no FFN; cosine.",
                           Source("this test", "tests/cli/test_add_a_method.py", "none")))
    CALLS.clear()
    yield METHODS["kk_probe"]
    unregister_method("kk_probe")
    assert "kk_probe" not in METHODS and "kk_probe" not in PATHS


def test_a_method_registered_outside_the_package_runs_end_to_end(kk_probe, tmp_path, monkeypatch):
    from tests.dashboard.test_dashboard import app, goto, markdown, ok

    from surgery_core.cli import main
    from surgery_core.run.config import DataConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    store = tmp_path / "store"
    monkeypatch.setenv("SURGERY_STORE", str(store))
    out = tmp_path / "out"
    # the command line: the method is a valid --methods name and its numbers are written
    assert main(["evaluate", "--no-progress", "--limit", "3", "--methods", "vv_mixed,kk_probe", "--figures", "0",
                 "--out", str(out)]) == 0
    assert CALLS, "the method's attention never ran"
    results = json.loads((out / "map_results.json").read_text())
    assert set(results["tables"]) == {"vv_mixed", "kk_probe"}
    assert results["config"]["methods"] == ["vv_mixed", "kk_probe"]
    # the store: its grids under its name and definition version, beside the built-in method's
    entries = list((store / "grids").rglob("*.npz"))
    assert len(entries) == 3
    key = entries[0].parents[1].name
    assert RunStore(store).stored_names(key, entries[0].stem) == {"vv_mixed@v1", "kk_probe@v1"}
    # the same configuration reopened reads the store (no forward pass) and gives the method its own map
    CALLS.clear()
    cfg = RunConfig(data=DataConfig(limit=3), methods=("vv_mixed", "kk_probe"), figure_samples=0)
    run = Run.open(cfg)
    assert CALLS == [] and run.run_hash == results["run_hash"]
    g = run.grids.grids
    assert g["kk_probe"].shape == g["vv_mixed"].shape and not np.allclose(g["kk_probe"], g["vv_mixed"])
    # the dashboard: Compare shows a panel for it, named, when every method of the run is chosen
    run.boxes, run.ap_tables(), run.sweep(), run.quality(), run.corloc(), run.ap_by_size()
    monkeypatch.setenv("SURGERY_DASHBOARD_CONFIG", cfg.model_dump_json())
    at = goto(app(), "compare")
    ok(at)
    at.button(key="methods_all").click().run()
    ok(at)
    assert len(at.image) == 2 + 2  # the image, one panel per method, the colour scale
    assert "**kk_probe**" in markdown(at) and "**vv_mixed**" in markdown(at)
