"""One demo scene: choose classes, background, roads and water, place the objects and distractors, render,
caption; and the training renderer built on it."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from surgery_core.demo.scenes.backgrounds import _BACKGROUNDS, _line_through, _road, _water
from surgery_core.demo.scenes.builder import _Builder
from surgery_core.demo.scenes.captions import _caption
from surgery_core.demo.scenes.classes import CLASS_BY_NAME, DEMO_CLASSES, PLACING_ORDER
from surgery_core.demo.scenes.distractors import _distractors
from surgery_core.errors import InputError

#: Bumped whenever the drawing changes, so that cached datasets/models can tell they are stale.
GENERATOR_VERSION = 1


@dataclass
class Scene:
    """One rendered scene.

    image: uint8 [size, size, 3], RGB. objects: ``(class_name, (xmin, ymin, xmax, ymax))`` per object,
    integer pixel-edge coordinates inside the image. caption: one English sentence naming what is shown.
    """

    image: np.ndarray
    objects: list[tuple[str, tuple[int, int, int, int]]]
    caption: str


def render_scene(rng: np.random.Generator, size: int = 224, plain: bool = False) -> Scene:
    """Draw one random aerial scene of ``size`` x ``size`` px with its object boxes and a caption.

    Everything random comes from ``rng``. With ``plain=True`` the same scene (same boxes and caption for
    the same rng state) is drawn with only the objects' bodies on a flat :data:`PLAIN_BACKGROUND`: no
    background, shadows, wakes, smoke, distractors, colour jitter, blur or noise; meant for checking
    that the boxes are tight. Every scene has at least one object.
    """
    size = int(size)
    if size < 64:
        raise InputError(None, f"size must be at least 64 px, got {size}")
    for _ in range(20):
        scene = _try_scene(rng, size, plain)
        if scene is not None:
            return scene
    raise RuntimeError("could not place any object in 20 scenes (this should not happen)")


def render_chunk(seed: int, start: int, stop: int, size: int) -> tuple[np.ndarray, list[str]]:
    """Scenes ``start..stop-1`` of a training set (scene i uses RNG (seed, i)): uint8 ``[n, 3, size, size]``
    (channels first, the layout the model reads) plus their captions."""
    images = np.empty((stop - start, 3, size, size), np.uint8)
    captions = []
    for j, i in enumerate(range(start, stop)):
        scene = render_scene(np.random.default_rng([seed, i]), size)
        images[j] = scene.image.transpose(2, 0, 1)
        captions.append(scene.caption)
    return images, captions


def _try_scene(rng: np.random.Generator, size: int, plain: bool) -> Scene | None:
    laid = _layout(rng, size)
    if laid is None:
        return None
    b, caption = laid
    return Scene(image=b.render(plain), objects=list(b.objects), caption=caption)


def _layout(rng: np.random.Generator, size: int) -> tuple[_Builder, str] | None:
    """Background, objects, distractors and caption of one scene (not yet rendered); None if nothing fitted."""
    b = _Builder(rng, size)
    k = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    classes = b.classes = [DEMO_CLASSES[i] for i in rng.choice(len(DEMO_CLASSES), k, replace=False)]
    if rng.random() < 0.8:
        pool = [bg for c in classes for bg in CLASS_BY_NAME[c].backgrounds]
    else:
        pool = list(_BACKGROUNDS)
    bg = pool[rng.integers(len(pool))]
    water = None
    if "ship" in classes:
        water = "full" if k == 1 and rng.random() < 0.4 else ("shore" if rng.random() < 0.6 else "river")
    elif rng.random() < 0.15:
        water = "pond" if rng.random() < 0.5 else "river"
    if water != "full":
        _BACKGROUNDS[bg](b)
    if bg != "urban" and water != "full" and rng.random() < (0.6 if "vehicle" in classes else 0.2):
        ang = b.grid_angle if bg in ("industrial", "apron") else float(rng.uniform(0, math.pi))
        p0, p1 = _line_through(b, ang, rng.uniform(0.15 * size, 0.85 * size, 2))
        _road(b, p0, p1, rng.uniform(7, 11) * b.u)
    if water is not None:
        _water(b, water)
    for record in PLACING_ORDER:
        if record.name in classes:
            record.placer(b)
    if not b.objects:
        return None
    if water != "full":
        _distractors(b, bg)
    counts = Counter(c for c, _ in b.objects)
    context = {"full": "sea", "shore": "shore", "river": "river"}.get(water or "", bg) \
        if "ship" in counts else bg
    return b, _caption(rng, {c: counts[c] for c in DEMO_CLASSES if c in counts}, b.tags, context)
