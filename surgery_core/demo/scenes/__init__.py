"""Procedural top-down "aerial scenes" with exact boxes and captions, written in DIOR's release layout.

The project's demo CLIP model is trained on these scenes (captions only, no boxes) so that heatmaps mean
something without any download; the boxes let the usual DIOR tooling score those heatmaps. Scenes are
drawn with numpy + OpenCV only, a few ms per 224 px scene on one core (about 3.5 ms measured on a busy core).

Units: all sizes below are pixels of a 224 px scene and scale linearly with ``size``. Boxes are integer
pixel-edge coordinates, ``(xmin, ymin, xmax, ymax)`` with ``0 <= xmin < xmax <= size`` (no +1 convention:
a box from x=10 to x=20 covers the 10 pixel columns 10..19), the tight box of every pixel the object's
body covers, its cast shadow, wake or smoke excluded.

Public API: :data:`DEMO_CLASSES`, :data:`CLASS_WORDS`, :class:`Scene`, :func:`render_scene`,
:func:`generate_dataset`, :func:`is_complete`.

Modules, in the order a scene is made: :mod:`.geometry` (shapes and draw commands), :mod:`.builder` (the
scene under construction: placement, rendering, sensor look), :mod:`.backgrounds` (ground, roads, water),
:mod:`.objects` (one drawing function and placer per class), :mod:`.distractors` (trees, buildings),
:mod:`.classes` (one :class:`DemoClass` record per class), :mod:`.captions`, :mod:`.scene` (one scene and
the training renderer), :mod:`.dataset` (DIOR's release layout).
"""

from surgery_core.demo.scenes.builder import PLAIN_BACKGROUND
from surgery_core.demo.scenes.classes import CLASS_RECORDS, CLASS_WORDS, DEMO_CLASSES, DemoClass
from surgery_core.demo.scenes.dataset import generate_dataset, is_complete
from surgery_core.demo.scenes.scene import GENERATOR_VERSION, Scene, render_chunk, render_scene

__all__ = [
    "DEMO_CLASSES", "CLASS_WORDS", "CLASS_RECORDS", "DemoClass", "PLAIN_BACKGROUND", "GENERATOR_VERSION",
    "Scene", "render_scene", "generate_dataset", "is_complete", "render_chunk",
]
