"""The shipped demo model: it loads, it is small, and its heatmaps localise (issue 4)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from surgery_core.data.datasets import load_dior
from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS
from surgery_core.demo.scenes import DEMO_CLASSES
from surgery_core.model.loading import load_model
from surgery_core.run.config import DataConfig, RunConfig
from surgery_core.run.facade import Run
from surgery_core.run.store import RunStore


def test_shipped_weights_load_and_are_small(demo_checkpoint):
    assert DEMO_WEIGHTS.stat().st_size < 25 * 1024 * 1024
    loaded = load_model(DEMO_ARCH, demo_checkpoint)
    assert loaded.image_size == 224 and loaded.patch_size == 32 and len(loaded.checkpoint_sha256) == 64


def test_vv_mixed_localises_better_than_standard(tmp_path, demo_checkpoint):
    """On a fixed split of 120 fresh demo scenes, CLIP Surgery points at the objects more often."""
    run = Run.open(RunConfig(data=DataConfig(limit=120), figure_samples=0), RunStore(tmp_path / "store"))
    pg = {m: v.pointing_game["overall"] for m, v in run.quality().methods.items()}
    assert pg["vv_mixed"] > pg["standard"] + 0.1, pg
    assert pg["vv_mixed"] > 0.3, pg
    # The class read from CLS is right well above chance (1 in 8).
    hits = [int(np.argmax(run.grids.probs[r])) in set(run.dataset.images[i].labels.tolist())
            for r, i in enumerate(run.grids.rows.tolist())]
    assert np.mean(hits) > 0.5


def test_demo_generate_command(tmp_path):
    out = tmp_path / "scenes"
    res = subprocess.run([sys.executable, "-m", "surgery_core.cli", "demo", "generate", "--out", str(out),
                          "--seed", "7", "--count", "20"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ds = load_dior(out, "all", DEMO_CLASSES, strict=True)
    assert len(ds) == 20 and all(r.path is not None for r in ds.images)
    assert len(load_dior(out, "test", DEMO_CLASSES)) == 4
