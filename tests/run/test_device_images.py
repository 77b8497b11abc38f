"""The GPU data path (device_images), run on the CPU: same images as the CPU path to one 8-bit level, same
refusals with the same texts, every index accounted for (issue 14). On a GPU the same code runs on nvJPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from surgery_core.data.images import read_image, squash, to_tensor
from surgery_core.errors import ImageError
from surgery_core.run.device_images import DeviceImageBatches, squash_normalise

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
ONE_LEVEL = 1 / 255 / min(STD) + 1e-6  # one 8-bit grey level, in normalised units


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path | None]:
    d = tmp_path_factory.mktemp("device-images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:800, 0:800]
    scene = np.stack([(xx * 0.3 + yy * 0.1) % 255, (yy * 0.3) % 255, ((xx + yy) * 0.2) % 255], -1)
    scene = np.clip(scene + rng.normal(0, 20, scene.shape), 0, 255).astype(np.uint8)
    Image.fromarray(scene).save(d / "scene.jpg", quality=90)
    Image.fromarray(scene[:, :, 0]).save(d / "grey.jpg", quality=90)
    Image.fromarray(np.dstack([scene[:600, :500], np.full((600, 500, 1), 200, np.uint8)])).save(d / "rgba.png")
    Image.fromarray(scene[:224, :224]).save(d / "native.jpg", quality=95)
    data = (d / "scene.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "text.jpg").write_text("not an image\n")
    return [d / "scene.jpg", d / "grey.jpg", d / "truncated.jpg", d / "rgba.png", None, d / "text.jpg",
            d / "native.jpg", d / "missing.jpg"]


def _cpu_path(path: Path | None) -> np.ndarray | str:
    """What the CPU loader (engine._ImageSet) makes of one file."""
    if path is None:
        return "image file not found next to its annotation"
    try:
        return to_tensor(squash(read_image(path), 224), MEAN, STD)
    except ImageError as exc:
        return str(exc)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_same_images_and_refusals_as_the_cpu_path(files, batch_size):
    seen: dict[int, np.ndarray | str] = {}
    batches = list(DeviceImageBatches(files, 224, MEAN, STD, batch_size, "cpu", read_threads=2))
    assert len(batches) == -(-len(files) // batch_size)
    for local, batch, bad in batches:
        assert batch is None or (batch.dtype == torch.float32 and tuple(batch.shape) == (len(local), 3, 224, 224))
        for k, j in enumerate(local):
            seen[j] = batch[k].numpy()
        for j, err in bad:
            seen[j] = err
    assert sorted(seen) == list(range(len(files)))
    for j, path in enumerate(files):
        ref = _cpu_path(path)
        if isinstance(ref, str):
            assert seen[j] == ref
            continue
        diff = np.abs(seen[j] - ref)
        assert diff.max() <= ONE_LEVEL, (path, diff.max())  # torch's bicubic vs OpenCV's fixed-point one
        assert (diff > 1e-5).mean() < 0.01, path
    native = files.index(next(p for p in files if p is not None and p.name == "native.jpg"))
    assert np.array_equal(seen[native], _cpu_path(files[native]))  # no resize: the same decoder, the same bytes


def test_squash_normalise_leaves_native_size_untouched():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = squash_normalise([img], 32, MEAN, STD)
    ref = to_tensor(img.permute(1, 2, 0).numpy(), MEAN, STD)
    assert np.allclose(out[0].numpy(), ref, atol=1e-6)
