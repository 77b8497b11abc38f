"""Hostile and broken inputs, crashes mid-run and concurrent writers (issue 7; docs/RELIABILITY.md)."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from surgery_core.data.images import decode_image, read_image
from surgery_core.errors import ImageError

CLI = [sys.executable, "-m", "surgery_core.cli"]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


RGB = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit", "palette", "jpeg"])
def test_image_modes_become_rgb(kind):
    if kind == "gray":
        data = _png(RGB[:, :, 0])
    elif kind == "rgba":
        data = _png(np.dstack([RGB, np.full((40, 50), 128, np.uint8)]))
    elif kind == "16bit":
        data = _png(RGB[:, :, 0].astype(np.uint16) * 257)
    elif kind == "palette":
        buf = io.BytesIO()
        Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE).save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = _jpeg(RGB)
    img = decode_image(data, f"x.{kind}")
    assert img.shape == (40, 50, 3) and img.dtype == np.uint8
    if kind in ("gray", "16bit"):
        np.testing.assert_array_equal(img[:, :, 0], RGB[:, :, 0])
    if kind == "rgba":
        np.testing.assert_array_equal(img, RGB)


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (decoding it would allocate gigabytes)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name,data,problem", [
    ("empty.jpg", b"", "empty file"),
    ("text.jpg", b"this is not an image", "not a readable image"),
    ("cut.jpg", _jpeg(RGB)[:300], "truncated JPEG"),
    ("cut.png", _png(RGB)[:-20], "truncated PNG"),
    ("bomb.png", _bomb_png(60000, 60000), "decompression-bomb guard"),
])
def test_broken_images_are_named(tmp_path, name, data, problem):
    f = tmp_path / name
    f.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(ImageError) as e:
        read_image(f)
    assert time.perf_counter() - t0 < 2
    assert name in str(e.value) and problem in str(e.value)


def test_a_bad_image_does_not_stop_a_run(tmp_path, dior_samples, demo_checkpoint):
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    root = tmp_path / "dior"
    shutil.copytree(dior_samples, root)
    (root / "JPEGImages-trainval" / "06486.jpg").write_bytes(b"\xff\xd8garbage")
    (root / "JPEGImages-trainval" / "09100.jpg").write_bytes(_jpeg(RGB)[:200])
    cfg = RunConfig(data=DataConfig(kind="samples", root=str(root)), model=ModelConfig(checkpoint=str(demo_checkpoint)))
    run = Run.open(cfg, RunStore(tmp_path / "store"))
    skipped = {s["image_id"]: s["reason"] for s in run.grids.skipped}
    assert set(skipped) == {"06486", "09100"}
    assert "06486.jpg" in skipped["06486"] and "truncated JPEG" in skipped["09100"]
    assert len(run.grids.rows) == 3 and run.ap_tables().methods  # the rest is scored
    assert "synthetic" in run.model_note  # the demo model on real imagery says so


def _metrics(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("map_results.json", "multi_iou_results.json",
                                                  "sweep_results.json", "heatmap_quality_analysis.json")}


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_identical_metrics(tmp_path, demo_checkpoint, demo_env):
    args = ["evaluate", "--checkpoint", str(demo_checkpoint), "--limit", "60", "--figures", "0"]
    ref_env = {**demo_env, "SURGERY_STORE": str(tmp_path / "ref-store")}
    ref = subprocess.run(CLI + args + ["--out", str(tmp_path / "ref")], env=ref_env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    env = {**demo_env, "SURGERY_STORE": str(tmp_path / "killed-store")}
    rng = random.Random(1)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(CLI + args + ["--out", str(tmp_path / "killed")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(2.0, 9.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    final = subprocess.run(CLI + args + ["--out", str(tmp_path / "killed")], env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _metrics(tmp_path / "killed") == _metrics(tmp_path / "ref")
    leftovers = [p for p in (tmp_path / "killed-store").rglob("*.tmp")]
    assert len(leftovers) <= kills  # a killed writer may leave its own temp file, never a half entry


@pytest.mark.slow
def test_two_processes_writing_one_store(tmp_path, demo_checkpoint, demo_env):
    env = {**demo_env, "SURGERY_STORE": str(tmp_path / "shared-store")}
    args = ["evaluate", "--checkpoint", str(demo_checkpoint), "--limit", "40", "--figures", "0"]
    procs = [subprocess.Popen(CLI + args + ["--out", str(tmp_path / f"out{i}")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-1500:] for r in results]
    assert _metrics(tmp_path / "out0") == _metrics(tmp_path / "out1")
