"""Text features cached in memory (bounded LRU) and on disk per (model sha256, prompt set, phrase) with LRU
eviction, safe with two processes, read back bit-identical (issue #27 item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import surgery_core.model.text as text
from surgery_core.data.classes import DIOR_CLASSES
from surgery_core.demo.model import DEMO_ARCH
from surgery_core.model.loading import load_model
from surgery_core.model.text_cache import TextDiskCache, TextMemory, model_text_key
from tests.conftest import REPO, environ


@pytest.fixture()
def cache(tmp_path):
    with environ({"SURGERY_CACHE": str(tmp_path)}):
        yield tmp_path / "text-features"


def test_memory_is_bounded_lru():
    one = torch.zeros(64)  # 256 bytes
    mem = TextMemory(max_bytes=3 * 256)
    for k in "abc":
        mem.put((k,), one.clone())
    assert mem.get(("a",)) is not None  # a is now the most recently used
    mem.put(("d",), one.clone())
    assert ("b",) not in mem and all((k,) in mem for k in "acd") and mem.nbytes == 3 * 256


def test_disk_round_trip_eviction_and_damage(tmp_path):
    disk = TextDiskCache(tmp_path, max_bytes=10**9)
    rng = np.random.default_rng(0)
    feats = {f"phrase {i}": rng.normal(size=512).astype(np.float32) for i in range(6)}
    disk.put("m", feats)
    assert all(np.array_equal(disk.get("m", p), f) for p, f in feats.items())
    assert disk.get("m", "never written") is None and disk.get("other model", "phrase 0") is None
    size = disk.path("m", "phrase 0").stat().st_size
    for i, p in enumerate(feats):  # distinct use times, phrase 0 oldest
        os.utime(disk.path("m", p), ns=(10**18 + i * 10**9,) * 2)
    disk.get("m", "phrase 0")  # used now: the most recent
    disk.max_bytes = 4 * size
    disk.put("m", {"phrase 6": feats["phrase 0"]})
    left = {p for p in [*feats, "phrase 6"] if disk.path("m", p).is_file()}
    assert left == {"phrase 0", "phrase 4", "phrase 5", "phrase 6"}  # 1, 2, 3 were the least recently used
    disk.path("m", "phrase 5").write_bytes(b"not an npz")
    assert disk.get("m", "phrase 5") is None and not disk.path("m", "phrase 5").exists()


def test_two_processes_share_one_folder(tmp_path):
    """Two processes writing and evicting in one folder at once: every file left is whole, the bound holds."""
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from surgery_core.model.text_cache import TextDiskCache
        disk = TextDiskCache({str(tmp_path)!r}, max_bytes=60_000)
        me = int(sys.argv[1])
        for i in range(120):
            disk.put("m", {{f"p{{i % 40}}": np.full(512, i % 40, np.float32)}})
            got = disk.get("m", f"p{{(i * 7) % 40}}")
            assert got is None or (got == (i * 7) % 40).all()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], cwd=REPO) for k in range(2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    disk = TextDiskCache(tmp_path, max_bytes=60_000)
    files = list((tmp_path / "m").iterdir())
    assert files and all(f.suffix == ".npy" for f in files)  # no temporary file left behind
    assert sum(f.stat().st_size for f in files) <= 60_000
    for i in range(40):
        got = disk.get("m", f"p{i}")
        assert got is None or (got == i).all()


def test_fresh_model_reads_disk_bit_identical(cache, monkeypatch):
    """A second load of the model (as in a fresh process) encodes nothing and gets the same bits; a new class
    alone is encoded; random weights, which no sha256 identifies, are never cached on disk."""
    names = list(DIOR_CLASSES)
    first = load_model(DEMO_ARCH)
    fresh = text.ensemble_text_features(first, names)
    assert text.ensemble_text_features(first, names) is fresh  # memory
    assert model_text_key(first, "surgery85") and len(list(cache.glob("*/*.npy"))) == len(names)

    calls = []
    real = text.encode_names
    monkeypatch.setattr(text, "encode_names", lambda loaded, todo, *a: calls.append(list(todo)) or real(
        loaded, todo, *a))
    second = load_model(DEMO_ARCH)
    again = text.ensemble_text_features(second, names)
    assert calls == [] and torch.equal(again, fresh)
    mixed = text.ensemble_text_features(second, ["ship", "a red boat", "harbor"])
    assert calls == [["a red boat"]]
    assert torch.equal(mixed[[0, 2]], fresh[[names.index("ship"), names.index("harbor")]])
    assert torch.equal(mixed[1], real(second, ["a red boat"])[0])
    assert text.is_cached(second, "a red boat") and not text.is_cached(second, "a blue boat")

    rand = load_model(DEMO_ARCH, random_weights=True)
    assert model_text_key(rand, "surgery85") is None
    before = len(list(cache.glob("*/*.npy")))
    text.ensemble_text_features(rand, ["a green boat"])
    assert len(list(cache.glob("*/*.npy"))) == before
