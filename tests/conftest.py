"""Shared fixtures: the real DIOR material in ../shared/data/dior, and small models."""

from __future__ import annotations

import os
import tarfile
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


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(demo_env):
    """Keep this process's generated data and run store out of the user's home too."""
    old = {k: os.environ.get(k) for k in ("SURGERY_CACHE", "SURGERY_STORE")}
    os.environ["SURGERY_CACHE"] = demo_env["SURGERY_CACHE"]
    os.environ["SURGERY_STORE"] = demo_env["SURGERY_STORE"]
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    """The shipped demo weights."""
    from surgery_core.demo.model import DEMO_WEIGHTS

    if not DEMO_WEIGHTS.is_file():
        pytest.fail(f"shipped demo weights missing: {DEMO_WEIGHTS}")
    return DEMO_WEIGHTS
