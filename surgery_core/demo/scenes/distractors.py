"""Distractors of the demo scenes: trees and buildings, drawn without boxes."""

from __future__ import annotations

import math

import cv2
import numpy as np

from surgery_core.demo.scenes.builder import _Builder
from surgery_core.demo.scenes.geometry import _TAU, _UNIT, _col, _fill, _fp, _fps, _Part, _rect, _shade, _xf


def _trees(b: _Builder, cx, cy, ang) -> _Part:
    rng, u = b.rng, b.u
    n = int(rng.integers(3, 16))
    spread = rng.uniform(4, 12) * u
    base = _col(rng, (46, 74, 38), 10, 5)
    pts = rng.normal(0, spread, (n, 1, 2)) + (cx, cy)
    radii = rng.uniform(1.8, 4.5, (n, 1, 1)) * u
    crowns = _UNIT[14][None] * radii + pts
    lit = crowns * 0.55 + (pts - b.sun * 0.3 * radii) * 0.45   # smaller disc shifted towards the sun
    body = [_fill(base, crowns), _fill(_shade(base, 1.25), lit)]
    return _Part(None, body, _fps([crowns + b.sun * radii * 1.3 * b.shadow_k]))


_ROOFS = [(150, 150, 150), (122, 82, 72), (170, 102, 82), (92, 102, 122), (204, 204, 198), (160, 150, 130),
          (74, 92, 112), (216, 216, 212), (110, 110, 104)]


def _building(b: _Builder, cx, cy, ang, big: bool) -> _Part:
    rng, u = b.rng, b.u
    lo, hi = (16, 48) if big else (7, 26)
    L, W = rng.uniform(lo, hi) * u, rng.uniform(lo * 0.7, hi * 0.7) * u
    if rng.random() < 0.7:
        ang = b.grid_angle + rng.choice([0, math.pi / 2]) + rng.normal(0, 0.02)
    roof = _col(rng, _ROOFS[rng.integers(len(_ROOFS))], 10, 4)
    poly = _rect(cx, cy, L, W, ang)
    body = [_fill(roof, poly)]
    if rng.random() < 0.5:   # gable roof: one half lighter
        body.append(_fill(_shade(roof, 1.15), _rect(*(_xf(np.array([[0, W / 4]]), cx, cy, ang)[0]), L, W / 2, ang)))
    elif big and rng.random() < 0.5:   # flat roof with rooftop units
        for _ in range(int(rng.integers(1, 4))):
            p = _xf(np.array([rng.uniform(-0.35, 0.35, 2) * (L, W)]), cx, cy, ang)[0]
            body.append(_fill(_shade(roof, 0.8), _rect(p[0], p[1], 3 * u, 2 * u, ang)))
    h = rng.uniform(2, 7) * u * b.shadow_k
    hull = cv2.convexHull(np.concatenate([poly, poly + b.sun * h]).astype(np.float32))[:, 0]
    return _Part(None, body, [_fp(hull)])


def _distractors(b: _Builder, bg: str) -> None:
    rng = b.rng
    trees = {"grass": (3, 9), "fields": (0, 4), "soil": (0, 3), "urban": (1, 6), "industrial": (0, 3),
             "apron": (0, 1)}[bg]
    houses = {"grass": (0, 4), "fields": (0, 3), "soil": (0, 4), "urban": (6, 18), "industrial": (3, 9),
              "apron": (0, 3)}[bg]
    big = bg in ("industrial", "apron")
    cells = b.free_cells("land")
    if not len(cells):
        return
    todo = [True] * int(rng.integers(*houses)) + [False] * int(rng.integers(*trees))
    for is_house in todo:
        for _ in range(2):
            cx, cy = b.centre(10 * b.u, cells)
            ang = float(rng.uniform(0, _TAU))
            part = _building(b, cx, cy, ang, big) if is_house else _trees(b, cx, cy, ang)
            if b.place_rough(part):
                break
