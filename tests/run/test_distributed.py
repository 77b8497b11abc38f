"""Runs sharded with torchrun (issue 14): same files whatever the layout, killed ranks, refused launches.

Everything runs on the CPU with the gloo backend, through PyTorch's own launcher (``torch.distributed.run``,
i.e. ``torchrun``) or, where ranks must be given different arguments, through the environment variables that
launcher sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from surgery_core.errors import SurgeryError
from surgery_core.run.distributed import launch_from_env, shard
from surgery_core.run.store import RunStore

MODULE = [sys.executable, "-m", "surgery_core"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
            "surgery_core"]
ARGS = ["evaluate", "--limit", "40", "--figures", "0", "--batch-size", "2", "--device", "cpu"]
JSON_FILES = ("map_results.json", "multi_iou_results.json", "sweep_results.json", "heatmap_quality_analysis.json")


def _files(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in JSON_FILES}


def _entries(store: Path) -> list[Path]:
    return sorted((store / "grids").rglob("*.npz")) if (store / "grids").is_dir() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_is_contiguous_balanced_and_complete():
    for count in (0, 1, 5, 40, 301, 11738):
        for world in (1, 2, 3, 8):
            parts = [shard(count, r, world) for r in range(world)]
            assert [i for p in parts for i in p] == list(range(count))
            sizes = [len(p) for p in parts]
            assert max(sizes) - min(sizes) <= 1


def test_launch_from_env():
    assert launch_from_env({}) is None
    assert launch_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # torchrun with one process: plain run
    got = launch_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (got.rank, got.world, got.local_rank, got.is_main) == (3, 4, 1, False)
    with pytest.raises(SurgeryError, match="outside"):
        launch_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(SurgeryError, match="integers"):
        launch_from_env({"RANK": "x", "WORLD_SIZE": "2"})


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, demo_env):
    """The reference: the same evaluation by one plain process, in a store of its own."""
    base = tmp_path_factory.mktemp("one-process")
    env = {**demo_env, "SURGERY_STORE": str(base / "store")}
    res = subprocess.run(MODULE + ARGS + ["--out", str(base / "out")], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "out"


@pytest.mark.slow
def test_two_ranks_write_byte_identical_files(tmp_path, demo_env, one_process):
    env = {**demo_env, "SURGERY_STORE": str(tmp_path / "store")}
    res = subprocess.run(TORCHRUN + ARGS + ["--out", str(tmp_path / "out"), "--progress"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _files(tmp_path / "out") == _files(one_process)
    assert len(_entries(tmp_path / "store")) == 40
    # rank 0 alone speaks on stdout: one summary line, once
    assert res.stdout.count("images with heatmaps") == 1, res.stdout
    # both ranks computed: with --progress each bar names its rank
    assert "rank 0/2" in res.stderr and "rank 1/2" in res.stderr


@pytest.mark.slow
def test_killed_rank_leaves_a_valid_store_and_a_rerun_finishes_identically(tmp_path, demo_env, one_process):
    store = tmp_path / "store"
    env = {**demo_env, "SURGERY_STORE": str(store)}
    cmd = TORCHRUN + ARGS + ["--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(_entries(store)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the launch ended before any rank could be killed"
        ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert ranks, "no rank process found under torchrun"
        os.kill(int(ranks[-1]), signal.SIGKILL)
        assert proc.wait(timeout=600) != 0  # torchrun reports the failed rank and stops the others
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (tmp_path / "out" / "map_results.json").exists()
    st = RunStore(store)
    for entry in _entries(store):  # whole entries only: each one loads
        assert st.get(entry.parent.parent.name, entry.stem) is not None, entry
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _files(tmp_path / "out") == _files(one_process)


def _manual_ranks(extra: list[list[str]], env: dict, tmp_path: Path) -> list[subprocess.CompletedProcess]:
    """Two ranks started by hand with the variables torchrun sets, each with its own extra arguments."""
    port = _free_port()
    procs = []
    for rank, more in enumerate(extra):
        e = {**env, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(MODULE + ARGS + ["--out", str(tmp_path / "out")] + more, env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_ranks_that_disagree_on_the_configuration_are_refused(tmp_path, demo_env):
    env = {**demo_env, "SURGERY_STORE": str(tmp_path / "store")}
    r0, r1 = _manual_ranks([[], ["--percentile", "75"]], env, tmp_path)
    assert (r0.returncode, r1.returncode) == (2, 2)
    lines = r0.stderr.strip().splitlines()
    assert lines[-1].startswith("surgery evaluate: error: ranks disagree on the run configuration"), r0.stderr
    assert "Traceback" not in r0.stderr + r1.stderr
    assert r1.stderr.strip() == ""  # the same refusal is said once, by rank 0
    assert _entries(tmp_path / "store") == []  # refused before any grid was computed


@pytest.mark.slow
def test_a_store_that_one_rank_cannot_write_is_refused(tmp_path, demo_env):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where rank 1's store folder should be\n")
    env = {**demo_env, "SURGERY_STORE": str(tmp_path / "store")}
    r0, r1 = _manual_ranks([[], ["--store", str(blocker / "store")]], env, tmp_path)
    assert (r0.returncode, r1.returncode) == (2, 2)
    last = r0.stderr.strip().splitlines()[-1]
    assert "must be writable by every rank" in last and "rank 1 on" in last and "not-a-folder" in last, r0.stderr
    assert "Traceback" not in r0.stderr + r1.stderr
    assert _entries(tmp_path / "store") == []
