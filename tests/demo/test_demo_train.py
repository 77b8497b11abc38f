"""`surgery demo train` on a few scenes and steps: loadable weights, a complete log, determinism, and a model
with a smaller input trained on scenes squashed exactly as the evaluation squashes its inputs."""

from __future__ import annotations

import json

import numpy as np
import open_clip
from safetensors.torch import load_file

from surgery_core.data.images import squash
from surgery_core.demo.model import CONFIG_DIR, DEMO_ARCH, DEMO_WEIGHTS
from surgery_core.demo.scenes import GENERATOR_VERSION, render_scene
from surgery_core.demo.train import render_training_set, squash_all, train
from surgery_core.model.loading import load_model

TINY = dict(scenes=40, steps=3, batch=16, render_workers=1, log_every=0)


def test_training_writes_loadable_weights_and_a_complete_log(tmp_path):
    log = train(tmp_path, **TINY)
    assert log["weights_file"] == DEMO_WEIGHTS.name
    loaded = load_model(DEMO_ARCH, tmp_path / log["weights_file"])  # strict load into the shipped architecture
    assert loaded.image_size == 224 and loaded.patch_size == 32
    on_disk = json.loads((tmp_path / "training_log.json").read_text())
    assert on_disk == log
    assert log["steps"] == 3 and len(log["loss_every_step"]) == 3 and all(np.isfinite(log["loss_every_step"]))
    assert log["generator_version"] == GENERATOR_VERSION and log["input_size"] == log["scene_size"] == 224


def test_training_is_deterministic_for_a_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    la, lb = train(a, **TINY), train(b, **TINY)
    assert la["loss_every_step"] == lb["loss_every_step"]
    wa, wb = load_file(a / la["weights_file"]), load_file(b / lb["weights_file"])
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def test_a_smaller_input_trains_on_scenes_squashed_like_the_evaluation_input(tmp_path):
    images, _ = render_training_set(3, 4, 224)
    small = squash_all(images, 112)
    for i in range(4):  # channels-first in, channels-first out; each image squashed by images.squash
        hwc = np.ascontiguousarray(images[i].transpose(1, 2, 0))
        assert np.array_equal(small[i].transpose(1, 2, 0), squash(hwc, 112))
    scene = render_scene(np.random.default_rng([3, 0]))
    assert np.array_equal(images[0].transpose(1, 2, 0), scene.image)

    cfg = json.loads((CONFIG_DIR / f"{DEMO_ARCH}.json").read_text())
    cfg["vision_cfg"].update(image_size=112, patch_size=16)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "Test-Demo-ViT-16-112.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    log = train(tmp_path / "out", arch="Test-Demo-ViT-16-112", **TINY)
    assert log["input_size"] == 112 and log["scene_size"] == 224
    loaded = load_model("Test-Demo-ViT-16-112", tmp_path / "out" / log["weights_file"])
    assert loaded.image_size == 112 and loaded.patch_size == 16
