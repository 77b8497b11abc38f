"""Shared fixtures: the real DIOR material in ../shared/data/dior, and small models."""

from __future__ import annotations

import os
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SURGERY_SHARED", REPO.parent / "shared"))
DIOR_TARBALL = SHARED / "data" / "dior" / "DIOR-annotations-hbb.tar.gz"
SAMPLES = REPO / "surgery_core" / "samples" / "dior"


@pytest.fixture(scope="session")
def dior_full(tmp_path_factory) -> Path:
    """All 23,463 real DIOR annotation files and the official splits, extracted once per session."""
    if not DIOR_TARBALL.is_file():
        pytest.fail(f"real DIOR annotations not found at {DIOR_TARBALL} (set SURGERY_SHARED)")
    out = tmp_path_factory.mktemp("dior")
    with tarfile.open(DIOR_TARBALL) as tar:
        tar.extractall(out, filter="data")
    return out / "DIOR"


@pytest.fixture(scope="session")
def dior_samples() -> Path:
    """The five real DIOR image + annotation pairs shipped with the project."""
    return SAMPLES


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory) -> dict:
    """Environment for subprocesses: cache and run store in a temporary folder, never in ~."""
    cache = tmp_path_factory.mktemp("surgery-cache")
    return {**os.environ, "SURGERY_CACHE": str(cache), "SURGERY_STORE": str(cache / "store")}


@contextmanager
def environ(values: dict[str, str], also: tuple[str, ...] = ()):
    """Set ``values`` in ``os.environ``; afterwards restore those keys and ``also`` (keys set meanwhile) to what
    they were, absent included."""
    saved = {k: os.environ.get(k) for k in (*values, *also)}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(demo_env):
    """Keep this process's generated data and run store out of the user's home too."""
    with environ({k: demo_env[k] for k in ("SURGERY_CACHE", "SURGERY_STORE")}):
        yield


@pytest.fixture(autouse=True)
def _offline_browser():
    """Every browser page opened through ``dashboard.serving.new_page`` blocks requests off this machine and
    records them: a test whose pages tried to reach any other address fails (the app ships every asset)."""
    from dashboard import serving

    serving.OUTSIDE_REQUESTS.clear()
    yield
    tried = sorted(set(serving.OUTSIDE_REQUESTS))
    serving.OUTSIDE_REQUESTS.clear()
    if tried:
        pytest.fail(f"the page tried to reach {len(tried)} address(es) off this machine: {tried[:5]}")


# ------------------------------------------------------------------------------------ dashboard tests
DASHBOARD_LIMIT = 40  # scenes of the demo test split used by the dashboard tests


def _dashboard_config(base: Path):
    """The run the dashboard tests open: the shipped demo weights if present, else a random checkpoint in
    ``base`` (its heatmaps mean nothing; the app must work anyway)."""
    import torch
    from safetensors.torch import save_file

    from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS
    from surgery_core.model.loading import load_model
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig

    data = DataConfig(limit=DASHBOARD_LIMIT)
    if DEMO_WEIGHTS.is_file():
        return RunConfig(data=data)
    ckpt = base / "random-demo.safetensors"
    if not ckpt.is_file():
        torch.manual_seed(0)
        model = load_model(DEMO_ARCH, random_weights=True).model
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    return RunConfig(data=data, model=ModelConfig(checkpoint=str(ckpt)))


@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory) -> dict[str, str]:
    """Environment of the dashboard tests (also set in ``os.environ`` for in-process AppTests), with the test
    run computed once per session: grids, boxes, AP tables, sweep and quality are in its store before any app
    test runs. Defined here, once, so every dashboard test module shares the one run."""
    base = tmp_path_factory.getbasetemp() / "dashboard"
    base.mkdir(exist_ok=True)
    env = {"SURGERY_CACHE": str(base / "cache"), "SURGERY_STORE": str(base / "store")}
    with environ(env, also=("SURGERY_DASHBOARD_CONFIG",)):
        from surgery_core.run.facade import Run

        cfg = _dashboard_config(base)
        run = Run.open(cfg)
        run.boxes, run.ap_tables(), run.sweep(), run.quality(), run.corloc(), run.ap_by_size()
        env["SURGERY_DASHBOARD_CONFIG"] = cfg.model_dump_json()
        os.environ.update(env)
        yield env


@pytest.fixture(scope="session")
def test_run(dashboard_env):
    """The dashboard tests' run, opened from the store :func:`dashboard_env` filled."""
    from surgery_core.run.config import RunConfig
    from surgery_core.run.facade import Run

    return Run.open(RunConfig.model_validate_json(dashboard_env["SURGERY_DASHBOARD_CONFIG"]))


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    """The shipped demo weights."""
    from surgery_core.demo.model import DEMO_WEIGHTS

    if not DEMO_WEIGHTS.is_file():
        pytest.fail(f"shipped demo weights missing: {DEMO_WEIGHTS}")
    return DEMO_WEIGHTS
