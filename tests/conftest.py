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
