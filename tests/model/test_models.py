"""Checkpoints: accepted wrappers, and clear refusals of everything that is not a matching state dict."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from surgery_core.errors import CheckpointError, InputError
from surgery_core.model.loading import load_model, read_state_dict


@pytest.fixture(scope="module")
def demo_state():
    torch.manual_seed(3)
    return load_model("Demo-ViT-32", random_weights=True).model.state_dict()


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module_prefix"])
def test_wrappers_load_to_identical_weights(tmp_path, demo_state, wrap):
    obj = {"plain": demo_state, "state_dict": {"state_dict": demo_state, "epoch": 3},
           "module_prefix": {f"module.{k}": v for k, v in demo_state.items()}}[wrap]
    f = tmp_path / "ckpt.pt"
    torch.save(obj, f)
    loaded = load_model("Demo-ViT-32", f)
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, demo_state[k])
    assert len(loaded.checkpoint_sha256) == 64


def test_wrong_architecture_is_named(tmp_path, demo_state):
    f = tmp_path / "demo.pt"
    torch.save(demo_state, f)
    with pytest.raises(CheckpointError) as e:
        load_model("ViT-B-32", f)
    assert "demo.pt" in str(e.value) and "does not match architecture ViT-B-32" in str(e.value)


def test_resnet_checkpoint_gets_a_hint(tmp_path, demo_state):
    state = dict(demo_state)
    state["visual.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    f = tmp_path / "rn50.pt"
    torch.save(state, f)
    with pytest.raises(CheckpointError, match="ResNet"):
        load_model("Demo-ViT-32", f)


def test_resnet_architecture_refused_clearly():
    with pytest.raises(InputError, match="needs an open_clip VisionTransformer"):
        load_model("RN50")


def _lying_safetensors() -> bytes:
    """A safetensors header that promises 4 MB of float32 data followed by 16 bytes."""
    import json
    import struct

    head = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    return struct.pack("<Q", len(head)) + head + b"\0" * 16


def _zip_without_torch() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    return buf.getvalue()


# Whatever the bytes, a refusal naming the file and what it holds (these used to end in IndexError, KeyError).
GARBAGE = {
    "empty": (b"", "empty file (0 bytes)"),
    "text": (b"this is not a checkpoint", "not a checkpoint: the file is a text file"),
    "hello": (b"hello world", "not a checkpoint: the file is a text file"),
    "json": (b'{"state_dict": {"a": 1}}', "not a checkpoint: the file is a JSON file"),
    "random": (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "not a checkpoint"),
    "zip": (_zip_without_torch(), "a zip archive without the data.pkl"),
    "lying-safetensors": (_lying_safetensors(), "not a readable safetensors file"),
}


@pytest.mark.parametrize("name", list(GARBAGE))
@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_garbage_files(tmp_path, name, suffix):
    content, problem = GARBAGE[name]
    f = tmp_path / f"bad{suffix}"
    f.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(problem)) as e:
        read_state_dict(f)
    assert str(e.value).startswith(str(f))


def test_a_folder_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        read_state_dict(tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        read_state_dict(tmp_path / "nope.pt")


def test_a_pickle_of_something_else_is_not_a_state_dict(tmp_path):
    for obj, problem in (({}, "an empty dict"), (torch.zeros(3), "found Tensor"), ([1, 2], "found list")):
        f = tmp_path / "other.pt"
        torch.save(obj, f)
        with pytest.raises(CheckpointError, match=problem):
            read_state_dict(f)


def test_an_architecture_without_a_checkpoint_is_refused_unless_asked():
    with pytest.raises(CheckpointError, match="ViT-B-32 needs a checkpoint.*--random-weights"):
        load_model("ViT-B-32")
    a = load_model("Demo-ViT-32", random_weights=True)
    b = load_model("Demo-ViT-32", random_weights=True)
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)  # random weights are seeded: the run store keys them alike
    assert a.checkpoint is None and a.checkpoint_sha256 is None


def test_the_demo_architecture_loads_its_shipped_weights():
    from surgery_core.demo.model import DEMO_WEIGHTS
    from surgery_core.files import content_sha256 as file_sha256

    if not DEMO_WEIGHTS.is_file():
        pytest.skip("demo weights not installed")
    loaded = load_model("Demo-ViT-32")
    assert loaded.checkpoint == str(DEMO_WEIGHTS) and loaded.checkpoint_sha256 == file_sha256(DEMO_WEIGHTS)


def test_truncated_checkpoint(tmp_path, demo_state):
    f = tmp_path / "full.pt"
    torch.save(demo_state, f)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        read_state_dict(cut)


def test_not_a_state_dict(tmp_path):
    f = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], f)
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_state_dict(f)
    g = tmp_path / "mixed.pt"
    torch.save({"visual.proj": torch.zeros(2), "note": "hello"}, g)
    with pytest.raises(CheckpointError, match="'note' holds a str"):
        read_state_dict(g)


class _Payload:
    """Unpickling this runs ``os.system``: a trace file appears if the loader ever executes code."""

    def __init__(self, trace):
        self.trace = trace

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.trace}",))


def test_pickle_with_code_is_never_run(tmp_path):
    trace = tmp_path / "PWNED"
    f = tmp_path / "evil.pt"
    with open(f, "wb") as fh:
        pickle.dump({"visual.proj": _Payload(trace)}, fh)
    # Sanity: plain pickle would run it (in a child process, so this test's process stays clean).
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(f)
    assert not trace.exists()
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(f)!r}, 'rb'))"], check=False)
    assert trace.exists(), "the payload is live: the refusal above is meaningful"


def test_safetensors_roundtrip(tmp_path, demo_state):
    from safetensors.torch import save_file

    f = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in demo_state.items()}, str(f))
    loaded = load_model("Demo-ViT-32", f)
    np.testing.assert_array_equal(loaded.model.visual.proj.detach().numpy(), demo_state["visual.proj"].numpy())
    f.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="safetensors"):
        read_state_dict(f)
