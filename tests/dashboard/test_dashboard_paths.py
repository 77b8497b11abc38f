"""Data roots: the dashboard opens datasets and checkpoints only under the roots of its configuration.

Every way a path reaches the app is tried: the sidebar form (``..`` escaping a root, an absolute path elsewhere,
a symlink inside a root that points outside) and a permalink naming a checkpoint outside. Each must be refused
with a message naming the path and the allowed roots, and nothing may be opened (no run appears in the store,
the session keeps its run). A path inside a root opens. Roots come from ``data_roots`` in
``$SURGERY_DASHBOARD_CONFIG`` and/or ``$SURGERY_DATA_ROOTS``; with neither, a safe default.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.dashboard.test_dashboard import app, ok


@pytest.fixture()
def roots(tmp_path, test_run):
    """``allowed/`` (the one data root) and ``outside/`` beside it, each holding a copy of the test checkpoint."""
    from surgery_core.demo.model import DEMO_WEIGHTS

    source = Path(test_run.cfg.model.checkpoint or DEMO_WEIGHTS)
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for d in (allowed, outside):
        d.mkdir()
        shutil.copy(source, d / "model.safetensors")
    (outside / "Annotations").mkdir()  # looks like a dataset: must not be read
    return allowed.resolve(), outside.resolve()


@pytest.fixture()
def confined(dashboard_env, roots, monkeypatch):
    """``(allowed, outside, before)``: ``allowed`` made the one data root through ``$SURGERY_DATA_ROOTS``, and
    the runs stored before the test, which a refused path must leave as they are."""
    allowed, outside = roots
    monkeypatch.setenv("SURGERY_DATA_ROOTS", str(allowed))
    return allowed, outside, _stored_runs()


def _stored_runs() -> set[str]:
    from surgery_core.run.store import default_store

    return {m.get("run_hash") for m in default_store().list_runs()}


def _submit(at, **fields):
    for key, value in fields.items():
        at.text_input(key=key).set_value(value)
    return at.get("form_submit_button")[0].click().run()


def _assert_refused(at, path: str, allowed: Path, test_run, before: set[str]) -> str:
    """The sidebar names the refused path and the allowed roots; the session keeps its run; nothing was opened."""
    assert not at.exception, [e.message for e in at.exception]
    msgs = [e.value for e in at.sidebar.error]
    refusal = [m for m in msgs if "Path refused" in m]
    assert refusal, msgs
    assert path in refusal[0] and str(allowed) in refusal[0] and "outside the configured data roots" in refusal[0]
    assert at.query_params["h"] == test_run.run_hash  # still the run it had
    assert test_run.run_hash in "\n".join(m.value for m in at.sidebar.markdown)
    assert _stored_runs() == before
    return refusal[0]


def test_dotdot_escaping_a_root_is_refused(test_run, confined):
    allowed, outside, before = confined
    at = app()
    ok(at)
    path = f"{allowed}/../outside"
    at.selectbox(key="f_kind").set_value("dior")
    msg = _assert_refused(_submit(at, f_root=path), path, allowed, test_run, before)
    assert f"resolves to {outside}" in msg


def test_absolute_path_outside_is_refused(test_run, confined):
    allowed, outside, before = confined
    at = app()
    path = str(outside / "model.safetensors")
    _assert_refused(_submit(at, f_ckpt=path), path, allowed, test_run, before)
    # the message stays until a run is accepted; the form keeps what was typed, to be corrected
    assert at.text_input(key="f_ckpt").value == path


def test_symlink_inside_a_root_pointing_outside_is_refused(test_run, confined):
    allowed, outside, before = confined
    (allowed / "models").symlink_to(outside, target_is_directory=True)
    at = app()
    path = str(allowed / "models" / "model.safetensors")
    msg = _assert_refused(_submit(at, f_ckpt=path), path, allowed, test_run, before)
    assert f"resolves to {outside / 'model.safetensors'}" in msg


def test_permalink_naming_an_outside_checkpoint_is_refused(test_run, confined):
    from dashboard.permalink import encode_config

    allowed, outside, before = confined
    path = str(outside / "model.safetensors")
    cfg = test_run.cfg.model_copy(update={"model": test_run.cfg.model.model_copy(update={"checkpoint": path})})
    at = app({"run": encode_config(cfg), "h": cfg.run_hash})
    assert not at.exception, [e.message for e in at.exception]
    for where in (at.sidebar.error, at.main.error):
        msgs = [e.value for e in where]
        assert any("Path refused" in m and path in m and str(allowed) in m for m in msgs), msgs
    assert not at.image  # no page was drawn
    assert _stored_runs() == before  # the run of the link was never opened


def test_path_inside_a_root_from_the_dashboard_config_opens(dashboard_env, test_run, roots, monkeypatch):
    """``data_roots`` in the dashboard configuration (relative to the config file) admits a checkpoint inside;
    it is not part of the run, so the default run keeps its hash."""
    allowed, outside = roots
    monkeypatch.delenv("SURGERY_DATA_ROOTS", raising=False)
    doc = json.loads(dashboard_env["SURGERY_DASHBOARD_CONFIG"])
    doc["data_roots"] = ["allowed"]
    conf = allowed.parent / "dashboard.json"
    conf.write_text(json.dumps(doc))
    monkeypatch.setenv("SURGERY_DASHBOARD_CONFIG", str(conf))
    at = app()
    ok(at)
    assert at.query_params["h"] == test_run.run_hash
    path = str(allowed / "model.safetensors")
    at = _submit(at, f_ckpt=path)
    ok(at)
    new = test_run.cfg.model_copy(update={"model": test_run.cfg.model.model_copy(update={"checkpoint": path})})
    assert at.query_params["h"] == new.run_hash
    assert new.run_hash in _stored_runs()
    # the same configuration refuses what lies beside its root
    other = str(outside / "model.safetensors")
    _submit(at, f_ckpt=other)
    assert any("Path refused" in e.value and other in e.value for e in at.sidebar.error)
    assert at.query_params["h"] == new.run_hash


def test_default_roots_without_configuration(dashboard_env, tmp_path, monkeypatch):
    """Nothing configured: the cache (demo scenes), the run store, the shipped samples and demo weights, and the
    paths of the app's default run are allowed; anything else is refused."""
    from dashboard.data import check_paths
    from dashboard.operator_settings import allowed_roots
    from surgery_core.demo import demo_data_root
    from surgery_core.demo.model import DEMO_WEIGHTS
    from surgery_core.errors import PathNotAllowedError
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
    from surgery_core.run.engine import SAMPLES_ROOT

    monkeypatch.delenv("SURGERY_DATA_ROOTS", raising=False)
    monkeypatch.delenv("SURGERY_DASHBOARD_CONFIG", raising=False)
    roots = {Path(r).resolve() for r in allowed_roots()}
    assert Path(os.environ["SURGERY_CACHE"]).resolve() in roots and Path(os.environ["SURGERY_STORE"]).resolve() in roots
    check_paths(RunConfig())
    check_paths(RunConfig(data=DataConfig(kind="samples", root=str(SAMPLES_ROOT))))
    check_paths(RunConfig(data=DataConfig(root=str(demo_data_root()))))
    check_paths(RunConfig(model=ModelConfig(checkpoint=str(DEMO_WEIGHTS))))
    for bad in (RunConfig(data=DataConfig(kind="dior", root=str(tmp_path))),
                RunConfig(data=DataConfig(kind="coco", root=str(SAMPLES_ROOT / "x.json"), images="/etc")),
                RunConfig(model=ModelConfig(checkpoint=str(SAMPLES_ROOT / ".." / ".." / "store.py")))):
        with pytest.raises(PathNotAllowedError, match="outside the configured data roots.*allowed roots: "):
            check_paths(bad)


def test_data_roots_setting_is_validated(tmp_path, monkeypatch):
    from dashboard.operator_settings import _dashboard_config, app_default_config, configured_data_roots

    monkeypatch.setenv("SURGERY_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), "", "~/b"]))
    monkeypatch.setenv("SURGERY_DASHBOARD_CONFIG", json.dumps({"data_roots": ["/srv/data"], "surgery_depth": 4}))
    assert configured_data_roots() == (Path("/srv/data"), tmp_path / "a", Path("~/b").expanduser())
    assert app_default_config().surgery_depth == 4
    with pytest.raises(ValueError, match="data_roots must be a list"):
        _dashboard_config(json.dumps({"data_roots": "/srv/data"}))
