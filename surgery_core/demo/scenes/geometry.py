"""Geometry and draw commands of the demo scenes.

Float pixel coordinates throughout, converted to OpenCV fixed point (:data:`_SHIFT` fractional bits) once,
right before drawing; a drawn thing is a :class:`_Part` of draw commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

_SHIFT = 4          # OpenCV fixed-point bits used for all drawing (1/16 px precision)
_ONE = 1 << _SHIFT
_TAU = 2.0 * math.pi


def _fp(pts) -> np.ndarray:
    """Float (..., 2) pixel coordinates -> int32 fixed point for OpenCV's ``shift`` argument."""
    return np.rint(np.asarray(pts, np.float64) * _ONE).astype(np.int32)


def _fps(polys) -> list[np.ndarray]:
    """Fixed-point polygon list from float polygons (N, 2) and/or batches of equal-size polygons (K, N, 2)."""
    out = []
    for p in polys:
        a = _fp(p)
        if a.ndim == 3:
            out.extend(a)
        else:
            out.append(a)
    return out


def _xf(local: np.ndarray, cx: float, cy: float, ang: float) -> np.ndarray:
    """Rotate local (..., 2) points by ``ang`` radians and move them to (cx, cy)."""
    c, s = math.cos(ang), math.sin(ang)
    return local @ np.array([[c, s], [-s, c]]) + (cx, cy)


_RING = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(np.arange(8) * _TAU / 8), np.sin(np.arange(8) * _TAU / 8)], 1)])
_UNIT = {n: np.stack([np.cos(np.arange(n) * _TAU / n), np.sin(np.arange(n) * _TAU / n)], 1)
         for n in (10, 14, 20, 28, 40, 56)}


def _circle(cx: float, cy: float, r: float) -> np.ndarray:
    n = 10 if r < 2.5 else 14 if r < 5 else 20 if r < 9 else 28 if r < 16 else 40 if r < 30 else 56
    return _UNIT[n] * r + (cx, cy)


def _rect(cx: float, cy: float, length: float, width: float, ang: float) -> np.ndarray:
    h, w = length / 2, width / 2
    return _xf(np.array([[-h, -w], [h, -w], [h, w], [-h, w]]), cx, cy, ang)


def _seg(p0, p1, width: float) -> np.ndarray:
    """Quad of a thick segment from p0 to p1 (``width`` px)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * (width / 2)
    return np.array([p0 + n, p1 + n, p1 - n, p0 - n])


def _stadium(cx: float, cy: float, length: float, width: float, ang: float, n: int = 16) -> np.ndarray:
    """Running-track outline: a rectangle with semicircular ends, ``length`` along ``ang``."""
    r = width / 2
    s = max(length - width, 0.0) / 2
    t1 = np.linspace(-math.pi / 2, math.pi / 2, n)
    t2 = t1 + math.pi
    local = np.concatenate([np.stack([s + r * np.cos(t1), r * np.sin(t1)], 1),
                            np.stack([-s + r * np.cos(t2), r * np.sin(t2)], 1)])
    return _xf(local, cx, cy, ang)


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float, n: int = 9, jitter: float = 0.3) -> np.ndarray:
    """Irregular round polygon of about radius ``r`` px (radii vary by +-``jitter``)."""
    cos_kt, sin_kt, unit = _blob_tables(max(n, 16))
    amp = rng.normal(0, 1, (3, 1)) / np.arange(1, 4)[:, None]
    ph = rng.uniform(0, _TAU, (3, 1))
    wave = (amp * (cos_kt * np.cos(ph) - sin_kt * np.sin(ph))).sum(0)     # sum_k amp_k cos(k t + ph_k)
    rad = r * np.clip(1 + jitter * wave, 0.35, 2.0)
    return unit * rad[:, None] + (cx, cy)


_BLOB_TABLES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _blob_tables(n: int):
    """cos(k t), sin(k t) for k = 1..3 and the unit circle at ``n`` evenly spaced angles t."""
    if n not in _BLOB_TABLES:
        t = np.linspace(0, _TAU, n, endpoint=False)
        k = np.arange(1, 4)[:, None]
        _BLOB_TABLES[n] = (np.cos(k * t), np.sin(k * t), np.stack([np.cos(t), np.sin(t)], 1))
    return _BLOB_TABLES[n]


def _col(rng: np.random.Generator, base, jitter: float = 10.0, tint: float = 4.0) -> tuple:
    """Colour near ``base`` (RGB 0-255): a shared brightness offset plus a small per-channel tint."""
    r = rng.random(4).tolist()
    o = (2 * r[0] - 1) * jitter
    return tuple(min(255.0, max(0.0, float(base[i]) + o + (2 * r[i + 1] - 1) * tint)) for i in range(3))


def _shade(colour, f: float) -> tuple:
    return tuple(float(min(255.0, c * f)) for c in colour)


# draw commands: ("fill", [fixed-point polys], colour) | ("line", [polys], colour, thickness, closed)
#                | ("blend", [polys], colour, alpha)

def _fill(colour, *polys) -> tuple:
    return ("fill", _fps(polys), colour)


def _line(colour, thickness: int, closed: bool, *polys) -> tuple:
    return ("line", _fps(polys), colour, int(thickness), closed)


def _blend(colour, alpha: float, *polys) -> tuple:
    return ("blend", _fps(polys), colour, float(alpha))


def _draw(img: np.ndarray, cmd: tuple, offset=None, value=None) -> None:
    """Run one draw command on ``img``; ``offset`` (fixed point) is subtracted, ``value`` overrides the colour."""
    polys = cmd[1] if offset is None else [p - offset for p in cmd[1]]
    colour = cmd[2] if value is None else value
    if cmd[0] == "line":
        cv2.polylines(img, polys, cmd[4], colour, cmd[3], cv2.LINE_8, _SHIFT)
    else:   # one call per polygon: a multi-polygon fillPoly XORs where polygons overlap
        for p in polys:
            cv2.fillPoly(img, [p], colour, cv2.LINE_8, _SHIFT)


@dataclass
class _Part:
    """One drawn thing: an object of class ``cls`` or (cls None) a distractor such as trees or a building.

    body: draw commands whose pixels are the object (its box); shadow: fixed-point polygons darkened on the
    ground; fx: translucent "blend" commands (wake, smoke) outside the box.
    """

    cls: str | None
    body: list
    shadow: list = field(default_factory=list)
    fx: list = field(default_factory=list)
