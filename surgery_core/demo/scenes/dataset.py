"""The demo scenes written as a dataset in DIOR's release layout."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from surgery_core.demo.scenes.classes import DEMO_CLASSES
from surgery_core.demo.scenes.scene import GENERATOR_VERSION, render_scene
from surgery_core.errors import InputError

_ANN_DIR = Path("Annotations") / "Horizontal Bounding Boxes"


def _xml(image_id: str, size: int, objects) -> bytes:
    """DIOR-schema annotation, tab-indented like the original files, no XML declaration."""
    lines = ["<annotation>", f"\t<filename>{image_id}.jpg</filename>", "\t<source>",
             "\t\t<database>DIOR-synthetic-demo</database>", "\t</source>", "\t<size>",
             f"\t\t<width>{size}</width>", f"\t\t<height>{size}</height>", "\t\t<depth>3</depth>", "\t</size>",
             "\t<segmented>0</segmented>"]
    for name, (x0, y0, x1, y1) in objects:
        lines += ["\t<object>", f"\t\t<name>{name}</name>", "\t\t<pose>Unspecified</pose>", "\t\t<bndbox>",
                  f"\t\t\t<xmin>{x0}</xmin>", f"\t\t\t<ymin>{y0}</ymin>", f"\t\t\t<xmax>{x1}</xmax>",
                  f"\t\t\t<ymax>{y1}</ymax>", "\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _split_sizes(count: int, fractions) -> tuple[int, int, int]:
    f = np.asarray(fractions, float)
    if f.shape != (3,) or (f < 0).any() or f.sum() <= 0:
        raise ValueError(f"split_fractions must be three non-negative numbers, got {fractions!r}")
    f = f / f.sum()
    n_train = int(round(count * f[0]))
    n_val = min(int(round(count * f[1])), count - n_train)
    return n_train, n_val, count - n_train - n_val


def is_complete(out: Path | str) -> bool:
    """True when ``out`` holds a generated dataset whose generation finished (``.complete`` exists)."""
    return (Path(out) / ".complete").is_file()


def generate_dataset(out: Path | str, seed: int, count: int, size: int = 224,
                     split_fractions=(0.6, 0.2, 0.2), overwrite: bool = False, jpeg_quality: int = 92,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Write ``count`` scenes to ``out`` in DIOR's release layout and return a summary.

    Layout: ``JPEGImages-trainval/NNNNN.jpg`` (train and val ids), ``JPEGImages-test/NNNNN.jpg``,
    ``Annotations/Horizontal Bounding Boxes/NNNNN.xml`` (DIOR schema), ``ImageSets/Main/{train,val,test}.txt``
    (one 5-digit id per line; ids 1..count, contiguous per split as in DIOR: train, then val, then test),
    ``captions.jsonl`` (``{"id", "caption"}`` per line), ``README.md`` and, written last, ``.complete``.

    Scene ``i`` (1-based id) is ``render_scene(np.random.default_rng([seed, i]), size)``: it does not depend
    on ``count``. Output is byte-identical for the same (seed, count, size, split_fractions, jpeg_quality).
    Files are written into a sibling ``.<name>.partial`` folder that is renamed to ``out`` at the end, so a
    crashed run leaves no ``out`` (or none with ``.complete``). An existing non-empty ``out`` is an error
    unless ``overwrite``.

    progress: called with 1 after each scene is written (a progress bar's ``update``).

    Returns ``{"out", "seed", "count", "size", "splits": {split: n_images},
    "objects": {split: {class: n_objects}}, "images_with_class": {class: n_images}}``.
    """
    out = Path(out)
    seed, count, size = int(seed), int(count), int(size)
    if not 1 <= count <= 99999:
        raise InputError(None, f"count must be 1..99999 (DIOR ids have 5 digits), got {count}")
    if seed < 0:
        raise InputError(None, f"seed must be non-negative, got {seed}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True to replace it")
    n_train, n_val, n_test = _split_sizes(count, split_fractions)
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test

    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    for d in ("JPEGImages-trainval", "JPEGImages-test", str(_ANN_DIR), "ImageSets/Main"):
        (tmp / d).mkdir(parents=True, exist_ok=True)

    ids: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    objects = {s: Counter() for s in ids}
    images_with = Counter()
    captions = []
    for i in range(1, count + 1):
        image_id = f"{i:05d}"
        split = splits[i - 1]
        scene = render_scene(np.random.default_rng([seed, i]), size)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for scene {image_id}")
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        (tmp / folder / f"{image_id}.jpg").write_bytes(jpg.tobytes())
        (tmp / _ANN_DIR / f"{image_id}.xml").write_bytes(_xml(image_id, size, scene.objects))
        ids[split].append(image_id)
        objects[split].update(c for c, _ in scene.objects)
        images_with.update({c for c, _ in scene.objects})
        captions.append(json.dumps({"id": image_id, "caption": scene.caption}, ensure_ascii=False))
        if progress is not None:
            progress(1)
    for split, lst in ids.items():
        (tmp / "ImageSets" / "Main" / f"{split}.txt").write_bytes("".join(f"{x}\n" for x in lst).encode())
    (tmp / "captions.jsonl").write_bytes(("\n".join(captions) + "\n").encode("utf-8"))

    summary = {
        "seed": seed, "count": count, "size": size, "generator_version": GENERATOR_VERSION,
        "splits": {s: len(v) for s, v in ids.items()},
        "objects": {s: {c: objects[s][c] for c in DEMO_CLASSES} for s in ids},
        "images_with_class": {c: images_with[c] for c in DEMO_CLASSES},
    }
    (tmp / "README.md").write_bytes(_readme(summary, jpeg_quality).encode("utf-8"))
    (tmp / ".complete").write_bytes((json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())

    if out.exists():
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    os.replace(tmp, out)
    return {"out": str(out), **summary}


def _readme(summary: dict, jpeg_quality: int) -> str:
    rows = "\n".join(
        f"| {c} | " + " | ".join(str(summary["objects"][s][c]) for s in ("train", "val", "test"))
        + f" | {summary['images_with_class'][c]} |" for c in DEMO_CLASSES)
    sp = summary["splits"]
    return f"""# Synthetic DIOR-layout demo scenes

These images are **synthetic**: procedurally drawn top-down scenes, not DIOR imagery and not photographs.
They exist so that the project's small demo CLIP model can be trained and its heatmaps checked without any
download. Do not report results on them as DIOR results.

- Generator: `surgery_core.demo.scenes.generate_dataset` (generator version {summary['generator_version']})
- Seed: {summary['seed']}
- Count: {summary['count']} images of {summary['size']} x {summary['size']} px, JPEG quality {jpeg_quality}
- Splits: train {sp['train']}, val {sp['val']}, test {sp['test']} (ids contiguous per split, as in DIOR)
- Scene `i` is `render_scene(numpy.random.default_rng([seed, i]), size)`; the same seed, count and size
  give byte-identical files.

Layout (DIOR's release layout): `JPEGImages-trainval/`, `JPEGImages-test/`,
`Annotations/Horizontal Bounding Boxes/NNNNN.xml`, `ImageSets/Main/{{train,val,test}}.txt`, plus
`captions.jsonl` (one caption per image) and `.complete` (written last; its absence means the generation
did not finish). Boxes are integer pixel-edge coordinates of each object's body, shadows excluded.

| class | train objects | val objects | test objects | images with class |
|---|---|---|---|---|
{rows}
"""
