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
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

__all__ = [
    "DEMO_CLASSES", "CLASS_WORDS", "PLAIN_BACKGROUND", "GENERATOR_VERSION", "Scene", "render_scene",
    "generate_dataset", "is_complete", "render_chunk",
]

#: The DIOR classes the generator draws, in DIOR's exact spelling.
DEMO_CLASSES: tuple[str, ...] = (
    "airplane", "storagetank", "tenniscourt", "ship", "vehicle", "groundtrackfield", "windmill", "chimney",
)

#: The words captions use for each class (the same words the model is prompted with), singular form.
CLASS_WORDS: dict[str, str] = {
    "airplane": "airplane", "storagetank": "storage tank", "tenniscourt": "tennis court", "ship": "ship",
    "vehicle": "vehicle", "groundtrackfield": "ground track field", "windmill": "windmill",
    "chimney": "chimney",
}

#: RGB colour of the flat background used by ``render_scene(..., plain=True)``; no object uses it.
PLAIN_BACKGROUND: tuple[int, int, int] = (255, 0, 255)

#: Bumped whenever the drawing changes, so that cached datasets/models can tell they are stale.
GENERATOR_VERSION = 1

_SHIFT = 4          # OpenCV fixed-point bits used for all drawing (1/16 px precision)
_ONE = 1 << _SHIFT
_TAU = 2.0 * math.pi


@dataclass
class Scene:
    """One rendered scene.

    image: uint8 [size, size, 3], RGB. objects: ``(class_name, (xmin, ymin, xmax, ymax))`` per object,
    integer pixel-edge coordinates inside the image. caption: one English sentence naming what is shown.
    """

    image: np.ndarray
    objects: list[tuple[str, tuple[int, int, int, int]]]
    caption: str


# --------------------------------------------------------------------------------------------------
# geometry helpers (float pixel coordinates; converted to fixed point once, right before drawing)

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


# --------------------------------------------------------------------------------------------------
# the scene under construction

class _Builder:
    LAND, WATER, PAVED = 0, 1, 2

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.S = rng, size
        self.u = size / 224.0
        self.img = np.zeros((size, size, 3), np.uint8)
        self.ground = np.zeros((size, size), np.uint8)   # LAND / WATER / PAVED per pixel
        self.occ = np.zeros((size, size), np.uint8)      # 1 where something already stands (plus margin)
        self.shadows: list[np.ndarray] = []
        # (is_object, commands, clip) per part in drawing order; clip: None, or where to draw the part
        # unclipped (a part crossing the border is drawn on a local canvas, rasterised exactly like its mask)
        self.bodies: list[tuple[bool, list, tuple | None]] = []
        self.fx: list[tuple] = []
        self.objects: list[tuple[str, tuple[int, int, int, int]]] = []
        self.tags: dict[str, set] = {}
        self.roads: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.grid_angle = 0.0
        self.classes: list[str] = []
        a = rng.uniform(0, _TAU)
        self.sun = np.array([math.cos(a), math.sin(a)])      # direction shadows fall towards
        self.shadow_k = rng.uniform(0.55, 1.1)               # shadow length per unit height
        a = rng.uniform(0, _TAU)
        self.lean = np.array([math.cos(a), math.sin(a)])     # where tall things lean in the oblique view
        a = rng.uniform(0, _TAU)
        self.wind = np.array([math.cos(a), math.sin(a)])
        self.margin = max(1, round(1.5 * self.u))
        self.stride = max(2, round(4 * self.u))     # grid step (px) of the free-spot search
        self._kernel = np.ones((3, 3), np.uint8)

    # ---- placement --------------------------------------------------------------------------
    def place(self, parts: list[_Part], rule: str = "land", underlay: list | None = None,
              paint: int | None = None, tag: str | None = None) -> int:
        """Add ``parts`` if they fit: no overlap with what stands, on the right ground, >=50% inside.

        rule: "land" (bodies and underlay on free land), "water" (bodies on water), "road" (bodies on
        paved ground) or "any". underlay: commands drawn at once into the background under the parts
        (a parking lot, a pad), ``paint`` sets their ground type. A part with less than half of its body
        inside the image is dropped (not drawn). ``tag`` is remembered per class for the caption
        ("lot", "road", "row", ...). Returns the number of parts placed (0: nothing changed).
        """
        S = self.S
        underlay = underlay or []
        polys = [p for part in parts for cmd in part.body + part.fx for p in cmd[1]]
        polys += [p for part in parts for p in part.shadow] + [p for cmd in underlay for p in cmd[1]]
        bx, by, bw, bh = cv2.boundingRect(np.concatenate(polys))
        pad = 4 + max([c[3] for part in parts for c in part.body if c[0] == "line"] + [0])
        x0, y0 = (bx >> _SHIFT) - pad, (by >> _SHIFT) - pad
        x1, y1 = ((bx + bw) >> _SHIFT) + pad + 1, ((by + bh) >> _SHIFT) + pad + 1
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, S), min(y1, S)
        if ix1 <= ix0 or iy1 <= iy0:
            return 0
        h, w = int(y1 - y0), int(x1 - x0)
        off = np.array([x0, y0], np.int32) << _SHIFT
        loc = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        img_sl = (slice(iy0, iy1), slice(ix0, ix1))

        kept = []
        fp = np.zeros((h, w), np.uint8)      # footprint: bodies, shadows, effects, underlay
        base = np.zeros((h, w), np.uint8)    # what must stand on the right ground: bodies (+ underlay)
        for part in parts:
            m = np.zeros((h, w), np.uint8)
            for cmd in part.body:
                _draw(m, cmd, off, 255)
            total = cv2.countNonZero(m)
            inside = cv2.countNonZero(m[loc])
            if total == 0 or inside * 2 < total:
                continue
            kept.append((part, m))
            base |= m
            for p in part.shadow:
                cv2.fillPoly(fp, [p - off], 255, cv2.LINE_8, _SHIFT)
            for cmd in part.fx:
                _draw(fp, cmd, off, 255)
        if not kept:
            return 0
        for cmd in underlay:
            _draw(base, cmd, off, 255)
        fp |= base
        fpi, basei = fp[loc], base[loc]
        if cv2.countNonZero(fpi & self.occ[img_sl]):
            return 0
        if rule != "any":
            want = {"land": self.LAND, "water": self.WATER, "road": self.PAVED}[rule]
            if cv2.countNonZero(basei & (self.ground[img_sl] != want).view(np.uint8)):
                return 0
        self.occ[img_sl] |= cv2.dilate(fpi, self._kernel, iterations=self.margin)
        for cmd in underlay:
            _draw(self.img, cmd)
            if paint is not None:
                _draw(self.ground, cmd, None, paint)
        clip = None if (x0, y0, x1, y1) == (ix0, iy0, ix1, iy1) else (off, h, w, loc, img_sl)
        for part, m in kept:
            self.bodies.append((part.cls is not None, part.body, clip))
            self.shadows.extend(part.shadow)
            self.fx.extend(part.fx)
            if part.cls is not None:
                x, y, bw, bh = cv2.boundingRect(m[loc])
                bx, by = int(ix0 + x), int(iy0 + y)
                self.objects.append((part.cls, (bx, by, bx + int(bw), by + int(bh))))
                if tag:
                    self.tags.setdefault(part.cls, set()).add(tag)
        return len(kept)

    def place_rough(self, part: _Part) -> bool:
        """Add a distractor (no box) if the rectangle around it, shadow and margin included, is free land."""
        bx, by, bw, bh = cv2.boundingRect(np.concatenate([p for cmd in part.body for p in cmd[1]] + part.shadow))
        x0, y0 = max((bx >> _SHIFT) - self.margin, 0), max((by >> _SHIFT) - self.margin, 0)
        x1 = min(((bx + bw) >> _SHIFT) + self.margin + 1, self.S)
        y1 = min(((by + bh) >> _SHIFT) + self.margin + 1, self.S)
        if x1 <= x0 or y1 <= y0:
            return False
        sl = (slice(y0, y1), slice(x0, x1))
        if cv2.countNonZero(self.occ[sl]) or cv2.countNonZero(self.ground[sl]):     # LAND is 0
            return False
        self.occ[sl] = 1
        self.bodies.append((False, part.body, None))
        self.shadows.extend(part.shadow)
        return True

    def free_cells(self, rule: str) -> np.ndarray:
        """Centres (K, 2) px of the cells of a coarse grid whose centre pixel is free and of the right ground."""
        st = self.stride
        o = self.occ[st // 2::st, st // 2::st] == 0
        if rule != "any":
            want = {"land": self.LAND, "water": self.WATER, "road": self.PAVED}[rule]
            o &= self.ground[st // 2::st, st // 2::st] == want
        iy, ix = np.nonzero(o)
        return np.stack([ix, iy], 1) * st + st // 2

    def centre(self, radius: float, cells: np.ndarray | None = None) -> tuple[float, float]:
        """A random centre for something of ``radius`` px: usually fully inside, sometimes at the border;
        drawn among ``cells`` (see :meth:`free_cells`) when some of them fit."""
        rng = self.rng
        lo = min(0.75 * radius, self.S / 2) if rng.random() < 0.85 else 0.0
        if cells is not None and len(cells):
            for _ in range(8):
                x, y = cells[rng.integers(len(cells))].tolist()
                if lo <= x <= self.S - lo and lo <= y <= self.S - lo:
                    dx, dy = rng.uniform(-self.stride / 2, self.stride / 2, 2).tolist()
                    return x + dx, y + dy
        x, y = rng.uniform(lo, self.S - lo, 2)
        return float(x), float(y)

    def attempt(self, make, radius: float, tries: int = 25, **kw) -> int:
        """Call ``make(cx, cy, ang) -> list[_Part]`` at random free spots until :meth:`place` accepts one."""
        rule = kw.get("rule", "land")
        cells = self.free_cells(rule)
        want = {"land": self.LAND, "water": self.WATER, "road": self.PAVED}.get(rule)
        for _ in range(tries):
            cx, cy = self.centre(radius, cells)
            # cheap probe before building anything: the centre and 8 points at 0.6 radius must be free
            px = (cx + 0.6 * radius * _RING[:, 0]).astype(int)
            py = (cy + 0.6 * radius * _RING[:, 1]).astype(int)
            inside = (px >= 0) & (py >= 0) & (px < self.S) & (py < self.S)
            px, py = px[inside], py[inside]
            if self.occ[py, px].any() or (want is not None and (self.ground[py, px] != want).any()):
                continue
            parts = make(cx, cy, float(self.rng.uniform(0, _TAU)))
            if isinstance(parts, tuple):
                parts, extra = parts
            else:
                extra = {}
            n = self.place(parts, **{**kw, **extra})
            if n:
                return n
        return 0

    # ---- rendering ----------------------------------------------------------------------------
    def render(self, plain: bool) -> np.ndarray:
        img = self.img
        if plain:
            img[:] = PLAIN_BACKGROUND
        elif self.shadows:
            sm = np.zeros((self.S, self.S), np.uint8)
            for p in self.shadows:
                cv2.fillPoly(sm, [p], 255, cv2.LINE_AA, _SHIFT)
            sm = cv2.GaussianBlur(sm, (3, 3), 0)
            keep = cv2.convertScaleAbs(sm, alpha=-self.rng.uniform(0.45, 0.62), beta=255)  # 255 = unshaded
            img = cv2.multiply(img, cv2.cvtColor(keep, cv2.COLOR_GRAY2RGB), scale=1 / 255)
        for is_object, cmds, clip in self.bodies:
            if not (is_object or not plain):
                continue
            if clip is None:
                for cmd in cmds:
                    _draw(img, cmd)
            else:
                off, h, w, loc, img_sl = clip
                canvas = np.zeros((h, w, 3), np.uint8)
                canvas[loc] = img[img_sl]
                for cmd in cmds:
                    _draw(canvas, cmd, off)
                img[img_sl] = canvas[loc]
        if plain:
            return img
        for cmd in self.fx:
            pts = np.concatenate(cmd[1]) >> _SHIFT
            x0, y0 = np.maximum(pts.min(0) - 1, 0)
            x1, y1 = np.minimum(pts.max(0) + 2, self.S)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = img[y0:y1, x0:x1]
            layer = roi.copy()
            for p in cmd[1]:
                cv2.fillPoly(layer, [p - (np.array([x0, y0], np.int32) << _SHIFT)], cmd[2], cv2.LINE_AA, _SHIFT)
            cv2.addWeighted(layer, cmd[3], roi, 1.0 - cmd[3], 0.0, dst=roi)
        return _sensor(self.rng, img, self.S)


def _sensor(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Global look on uint8 RGB: haze, contrast, colour/brightness jitter, slight blur, grain."""
    h = rng.uniform(0.04, 0.18) if rng.random() < 0.3 else 0.0
    contrast = rng.uniform(0.85, 1.15)
    gain = rng.uniform(0.86, 1.12) * rng.uniform(0.98, 1.02, 3) * contrast
    offset = 128.0 * (1 - contrast) + rng.uniform(-4, 4) + rng.uniform(-2, 2, 3)
    # (x * (1 - h) + h * haze) * gain + offset  ==  x * a + b
    a = (1 - h) * gain
    b = h * np.array([200.0, 205.0, 212.0]) * gain + offset
    img = cv2.transform(img, np.concatenate([np.diag(a), b[:, None]], 1))   # per-channel x * a + b, saturated
    sigma = rng.uniform(0.0, 0.85)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (3, 3), sigma)
    g = _grain(size)
    ox, oy = rng.integers(0, size, 2)
    beta = rng.uniform(1.5, 5.0) / _GRAIN_SD
    return cv2.addWeighted(img, 1.0, g[oy:oy + size, ox:ox + size], beta, -128.0 * beta)


_GRAIN: dict[int, np.ndarray] = {}
_GRAIN_SD = 24.0


def _grain(size: int) -> np.ndarray:
    """Fixed (seeded once) grey noise, uint8 128 +- 24 (1 sd), 2x the scene size; scenes use random crops."""
    g = _GRAIN.get(size)
    if g is None:
        n = np.random.default_rng(20240611).standard_normal((2 * size, 2 * size))
        g1 = np.clip(np.rint(128 + _GRAIN_SD * n), 0, 255).astype(np.uint8)
        g = np.ascontiguousarray(np.repeat(g1[..., None], 3, axis=2))
        _GRAIN[size] = g
    return g


# --------------------------------------------------------------------------------------------------
# backgrounds

def _smooth_field(rng: np.random.Generator, size: int, base, amp: float, tint_amp: float,
                  cells: int = 6) -> np.ndarray:
    """uint8 RGB [size, size, 3]: ``base`` colour plus smooth brightness (``amp``) and tint (``tint_amp``)
    variation over about ``cells`` blobs across the image (amplitudes in 0-255 levels, 1 sd)."""
    lf = rng.standard_normal((cells, cells, 1)).astype(np.float32)
    hue = rng.normal(0, 1, 3)
    hue = (hue - hue.mean()) / (np.abs(hue - hue.mean()).max() + 1e-6)   # zero-mean colour shift, max 1
    tint = rng.standard_normal((cells, cells, 1)).astype(np.float32) * hue.astype(np.float32)
    small = np.asarray(base, np.float32) + lf * np.float32(amp) + tint * np.float32(tint_amp)
    small = cv2.resize(small, (32, 32), interpolation=cv2.INTER_CUBIC)
    small = np.clip(small, 0, 255).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _textured(b: _Builder, base, amp: float, tint_amp: float, cells: int = 6) -> None:
    """Fill the image with ``base`` colour plus smooth brightness and tint variation (amplitudes in 0-255)."""
    b.img[:] = _smooth_field(b.rng, b.S, base, amp, tint_amp, cells)


def _patches(b: _Builder, colours, n: int, rmin: float, rmax: float) -> None:
    rng, u = b.rng, b.u
    for _ in range(n):
        cx, cy = rng.uniform(0, b.S, 2)
        c = _col(rng, colours[rng.integers(len(colours))], 8, 4)
        cv2.fillPoly(b.img, [_fp(_blob(rng, cx, cy, rng.uniform(rmin, rmax) * u, 12, 0.25))], c, cv2.LINE_AA, _SHIFT)


def _bg_grass(b: _Builder) -> None:
    rng = b.rng
    base = _col(rng, (88, 118, 62), 14, 8)
    _textured(b, base, 9, 5)
    _patches(b, [_shade(base, 0.8), _shade(base, 1.15), (128, 132, 82), (104, 124, 70)],
             int(rng.integers(3, 10)), 12, 40)
    if rng.random() < 0.4:   # a footpath
        _track(b, (178, 168, 140), 1.5)


def _bg_soil(b: _Builder) -> None:
    rng = b.rng
    base = _col(rng, (168, 142, 108), 18, 8)
    _textured(b, base, 10, 5)
    _patches(b, [_shade(base, 0.85), _shade(base, 1.1), (140, 130, 100), (120, 125, 85)],
             int(rng.integers(3, 9)), 10, 40)
    for _ in range(int(rng.integers(0, 3))):
        _track(b, _shade(base, 1.15), rng.uniform(1.5, 3.0))


def _track(b: _Builder, colour, width: float) -> None:
    """A wandering dirt track (background only, not a road)."""
    rng, S, u = b.rng, b.S, b.u
    p = rng.uniform(0, S, 2)
    a = rng.uniform(0, _TAU)
    pts = [p.copy()]
    for _ in range(12):
        a += rng.normal(0, 0.25)
        p = p + 25 * u * np.array([math.cos(a), math.sin(a)])
        pts.append(p.copy())
    pts = np.array(pts)
    pts -= pts.mean(0) - rng.uniform(0.2 * S, 0.8 * S, 2)
    cv2.polylines(b.img, [_fp(pts)], False, _col(rng, colour, 6), max(1, round(width * u)), cv2.LINE_AA, _SHIFT)


def _bg_fields(b: _Builder) -> None:
    """Patchwork of crop fields with row stripes."""
    rng, S, u = b.rng, b.S, b.u
    palette = [(96, 128, 64), (122, 140, 76), (150, 146, 92), (170, 150, 106), (132, 108, 80),
               (78, 108, 58), (180, 170, 120)]
    _textured(b, (130, 130, 85), 6, 4)
    ang = rng.uniform(0, math.pi)
    half = S * 0.75
    xs = [-half]
    while xs[-1] < half:
        xs.append(xs[-1] + rng.uniform(35, 85) * u)
    centre = S / 2
    stripes = []
    for i in range(len(xs) - 1):
        ys = [-half]
        while ys[-1] < half:
            ys.append(ys[-1] + rng.uniform(30, 80) * u)
        for j in range(len(ys) - 1):
            colour = _col(rng, palette[rng.integers(len(palette))], 10, 5)
            loc = np.array([[xs[i], ys[j]], [xs[i + 1], ys[j]], [xs[i + 1], ys[j + 1]], [xs[i], ys[j + 1]]])
            poly = _xf(loc, centre, centre, ang)
            cv2.fillPoly(b.img, [_fp(poly)], colour, cv2.LINE_8, _SHIFT)
            if rng.random() < 0.55:
                step = rng.uniform(2.6, 4.5) * u
                vertical = rng.random() < 0.5
                if vertical:
                    t = np.arange(xs[i] + step / 2, xs[i + 1], step)
                    loc = np.stack([np.stack([t, np.full_like(t, ys[j])], 1),
                                    np.stack([t, np.full_like(t, ys[j + 1])], 1)], 1)
                else:
                    t = np.arange(ys[j] + step / 2, ys[j + 1], step)
                    loc = np.stack([np.stack([np.full_like(t, xs[i]), t], 1),
                                    np.stack([np.full_like(t, xs[i + 1]), t], 1)], 1)
                stripes.append((_xf(loc, centre, centre, ang), _shade(colour, rng.uniform(0.82, 0.9))))
            cv2.polylines(b.img, [_fp(poly)], True, (150, 140, 110), 1, cv2.LINE_8, _SHIFT)
    for lines, colour in stripes:
        cv2.polylines(b.img, _fps([lines]), False, colour, 1, cv2.LINE_8, _SHIFT)


def _road(b: _Builder, p0, p1, width: float, colour=None) -> None:
    """Asphalt road from p0 to p1 (may run past the image), ``width`` px, with markings; ground = PAVED."""
    rng, u = b.rng, b.u
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    colour = colour or _col(rng, (84, 86, 88), 10, 3)
    quad = _fp(_seg(p0, p1, width))
    cv2.fillPoly(b.img, [quad], colour, cv2.LINE_8, _SHIFT)
    cv2.fillPoly(b.ground, [quad], b.PAVED, cv2.LINE_8, _SHIFT)
    d = p1 - p0
    length = float(np.hypot(*d))
    d /= length
    nrm = np.array([-d[1], d[0]])
    if rng.random() < 0.6:   # kerbs
        edge = (150, 150, 145)
        for sgn in (-1, 1):
            e = nrm * sgn * (width / 2 - 0.6 * u)
            cv2.polylines(b.img, [_fp(np.array([p0 + e, p1 + e]))], False, edge, 1, cv2.LINE_8, _SHIFT)
    if width > 6 * u:       # dashed centre line
        dash, gap = rng.uniform(3, 5) * u, rng.uniform(3, 6) * u
        marking = (215, 205, 150) if rng.random() < 0.4 else (220, 220, 215)
        t = np.arange(0, length, dash + gap)[:, None]
        segs = np.stack([p0 + d * t, p0 + d * np.minimum(t + dash, length)], 1)
        cv2.polylines(b.img, _fps([segs]), False, marking, 1, cv2.LINE_8, _SHIFT)
    b.roads.append((p0, p1, width))


def _line_through(b: _Builder, ang: float, point) -> tuple[np.ndarray, np.ndarray]:
    d = np.array([math.cos(ang), math.sin(ang)]) * b.S * 1.5
    point = np.asarray(point, float)
    return point - d, point + d


def _bg_urban(b: _Builder) -> None:
    rng, S, u = b.rng, b.S, b.u
    base = _col(rng, (128, 127, 122), 14, 4)
    _textured(b, base, 7, 1.2, cells=8)
    _patches(b, [(96, 118, 70), _shade(base, 0.9), _shade(base, 1.1)], int(rng.integers(2, 7)), 6, 18)
    ang = 0.0 if rng.random() < 0.6 else float(rng.uniform(0, math.pi / 2))
    b.grid_angle = ang
    centre = np.array([S / 2, S / 2])
    for axis in (ang, ang + math.pi / 2):
        nrm = np.array([-math.sin(axis), math.cos(axis)])
        # blocks large enough for a ground track field when the scene has one
        spacing = rng.uniform(150, 190) * u if "groundtrackfield" in b.classes else rng.uniform(55, 95) * u
        o = rng.uniform(-spacing / 2, spacing / 2)
        for k in range(-3, 4):
            off = o + k * spacing
            if abs(off) > 0.8 * S:
                continue
            p0, p1 = _line_through(b, axis, centre + nrm * off)
            _road(b, p0, p1, rng.uniform(7, 12) * u)


def _bg_industrial(b: _Builder) -> None:
    rng, S, u = b.rng, b.S, b.u
    base = _col(rng, (160, 157, 148), 14, 4)
    _textured(b, base, 7, 1.2)
    _slabs(b, _shade(base, 0.93), rng.uniform(14, 26) * u, rng.uniform(0, math.pi / 2))
    _patches(b, [(140, 125, 100), _shade(base, 0.88), (118, 122, 88)], int(rng.integers(1, 6)), 8, 30)
    if rng.random() < 0.6:
        ang = b.grid_angle = float(rng.uniform(0, math.pi))
        p0, p1 = _line_through(b, ang, rng.uniform(0.15 * S, 0.85 * S, 2))
        _road(b, p0, p1, rng.uniform(7, 11) * u)


def _slabs(b: _Builder, colour, spacing: float, ang: float) -> None:
    """Grid of thin joint lines (concrete slabs)."""
    S = b.S
    centre = np.array([S / 2, S / 2])
    lines = []
    for axis in (ang, ang + math.pi / 2):
        nrm = np.array([-math.sin(axis), math.cos(axis)])
        for k in np.arange(-S, S, spacing):
            lines.append(_fp(np.array(_line_through(b, axis, centre + nrm * k))))
    cv2.polylines(b.img, lines, False, colour, 1, cv2.LINE_8, _SHIFT)


def _bg_apron(b: _Builder) -> None:
    rng, S, u = b.rng, b.S, b.u
    base = _col(rng, (172, 170, 162), 14, 4)
    _textured(b, base, 5, 1.2)
    ang = float(rng.uniform(0, math.pi))
    b.grid_angle = ang
    _slabs(b, _shade(base, 0.92), rng.uniform(10, 18) * u, ang)
    yellow = (205, 178, 70)
    for _ in range(int(rng.integers(1, 4))):   # taxi lines
        p0, p1 = _line_through(b, ang + rng.choice([0, math.pi / 2]), rng.uniform(0, S, 2))
        cv2.polylines(b.img, [_fp(np.array([p0, p1]))], False, yellow, 1, cv2.LINE_8, _SHIFT)
    if rng.random() < 0.5:
        c = rng.uniform(0, S, 2)
        cv2.ellipse(b.img, (int(c[0]), int(c[1])), (int(rng.uniform(20, 60) * u),) * 2, 0, 0,
                    rng.uniform(60, 180), yellow, 1, cv2.LINE_8)
    if rng.random() < 0.3:   # a runway-like asphalt strip
        nrm = np.array([-math.sin(ang), math.cos(ang)])
        p0, p1 = _line_through(b, ang, np.array([S / 2, S / 2]) + nrm * rng.uniform(-0.45, 0.45) * S)
        w = rng.uniform(18, 30) * u
        cv2.fillPoly(b.img, [_fp(_seg(p0, p1, w))], _col(rng, (78, 80, 82), 8), cv2.LINE_8, _SHIFT)
        cv2.polylines(b.img, [_fp(_seg(p0, p1, w - 3 * u))], True, (220, 220, 215), 1, cv2.LINE_8, _SHIFT)


_BACKGROUNDS = {"grass": _bg_grass, "fields": _bg_fields, "soil": _bg_soil, "urban": _bg_urban,
                "industrial": _bg_industrial, "apron": _bg_apron}

_WATER_COLOURS = [(32, 62, 92), (42, 78, 98), (28, 52, 64), (52, 92, 104), (58, 84, 72), (36, 70, 110)]


def _water(b: _Builder, mode: str) -> None:
    """Paint water: "full" image, "shore" (one side of a wavy line), "river" (a band) or "pond"."""
    rng, S, u = b.rng, b.S, b.u
    colour = _col(rng, _WATER_COLOURS[rng.integers(len(_WATER_COLOURS))], 8, 4)
    mask = np.zeros((S, S), np.uint8)
    edge = None
    if mode == "full":
        mask[:] = 1
    elif mode == "pond":
        cx, cy = rng.uniform(0.1 * S, 0.9 * S, 2)
        cv2.fillPoly(mask, [_fp(_blob(rng, cx, cy, rng.uniform(18, 40) * u, 24, 0.2))], 1, cv2.LINE_8, _SHIFT)
    else:
        ang = rng.uniform(0, _TAU)
        d = np.array([math.cos(ang), math.sin(ang)])
        nrm = np.array([-d[1], d[0]])
        t = np.linspace(-S, S, 40)
        wavy = rng.random() < 0.6
        amp = rng.uniform(3, 10) * u if wavy else 0.0
        ph, fr = rng.uniform(0, _TAU, 2), rng.uniform(0.01, 0.03, 2) / u
        wob = amp * (np.sin(t * fr[0] + ph[0]) + 0.5 * np.sin(t * fr[1] * 2.3 + ph[1]))
        centre = np.array([S / 2, S / 2]) + nrm * rng.uniform(-0.2, 0.2) * S
        if mode == "shore":
            line = centre + t[:, None] * d + wob[:, None] * nrm
            poly = np.concatenate([line, line[::-1] + nrm * 3 * S])
            cv2.fillPoly(mask, [_fp(poly)], 1, cv2.LINE_8, _SHIFT)
            edge = [line]
        else:
            width = rng.uniform(0.3, 0.55) * S
            a = centre + t[:, None] * d + wob[:, None] * nrm - nrm * width / 2
            c = centre + t[:, None] * d + wob[:, None] * nrm + nrm * width / 2
            cv2.fillPoly(mask, [_fp(np.concatenate([a, c[::-1]]))], 1, cv2.LINE_8, _SHIFT)
            edge = [a, c]
    tex = _smooth_field(rng, S, colour, rng.uniform(3, 7), 2.0, 5)
    cv2.copyTo(tex, mask, b.img)
    cv2.copyTo(np.full_like(b.ground, b.WATER), mask, b.ground)
    if edge is not None:
        shore = _col(rng, (176, 168, 140) if rng.random() < 0.6 else (150, 150, 145), 10, 4)
        cv2.polylines(b.img, [_fp(e) for e in edge], False, shore, max(1, round(rng.uniform(1, 2.5) * u)),
                      cv2.LINE_AA, _SHIFT)


# --------------------------------------------------------------------------------------------------
# objects (sizes in px at 224, multiplied by b.u)

def _airplane(b: _Builder, cx, cy, ang, length, colour) -> _Part:
    rng, L = b.rng, length
    span = L * rng.uniform(0.85, 1.05)
    sw = rng.uniform(0.12, 0.26) * L
    fus = np.array([[0.5, 0], [0.46, 0.03], [0.38, 0.05], [-0.36, 0.045], [-0.47, 0.02], [-0.5, 0],
                    [-0.47, -0.02], [-0.36, -0.045], [0.38, -0.05], [0.46, -0.03]]) * L
    wing = np.array([[0.12 * L, 0], [0.12 * L - sw, span / 2], [0.03 * L - sw, span / 2], [-0.15 * L, 0],
                     [0.03 * L - sw, -span / 2], [0.12 * L - sw, -span / 2]])
    tsp = rng.uniform(0.32, 0.42) * L
    tail = np.array([[-0.34 * L, 0], [-0.42 * L, tsp / 2], [-0.48 * L, tsp / 2], [-0.48 * L, 0],
                     [-0.48 * L, -tsp / 2], [-0.42 * L, -tsp / 2]])
    fus_w, wing_w, tail_w = (_xf(p, cx, cy, ang) for p in (fus, wing, tail))
    body = [_fill(_shade(colour, 0.93), wing_w, tail_w), _fill(colour, fus_w)]
    engine = (70, 72, 78)
    n_eng = 2 if rng.random() < 0.75 else 4
    engines = []
    for frac in ([0.36] if n_eng == 2 else [0.3, 0.6]):
        for sgn in (-1, 1):
            y = sgn * frac * span / 2
            x = 0.12 * L - sw * abs(y) / (span / 2) + 0.01 * L
            engines.append(_rect(*(_xf(np.array([[x, y]]), cx, cy, ang)[0]), 0.11 * L, max(0.045 * L, 1.0), ang))
    body.append(_fill(engine, *engines))
    if rng.random() < 0.5:   # painted tail fin, seen from above as a stripe along the rear fuselage
        fin = _xf(np.array([[-0.33 * L, 0], [-0.49 * L, 0]]), cx, cy, ang)
        body.append(_fill(_col(rng, [(180, 40, 40), (40, 70, 150), (40, 120, 80), (220, 150, 40)][rng.integers(4)], 10),
                          _seg(fin[0], fin[1], max(1.0, 0.035 * L))))
    cockpit = _xf(np.array([[0.43 * L, 0]]), cx, cy, ang)[0]
    body.append(_fill((60, 66, 80), _rect(cockpit[0], cockpit[1], max(0.05 * L, 1.0), max(0.05 * L, 1.0), ang)))
    h = L * rng.uniform(0.1, 0.16) * b.shadow_k
    sh = b.sun * h
    return _Part("airplane", body, [_fp(p + sh) for p in (fus_w, wing_w, tail_w)])


def _place_airplanes(b: _Builder) -> None:
    rng, u = b.rng, b.u
    n = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
    length = rng.uniform(22, 48) * u
    colour = _col(rng, (232, 232, 230) if rng.random() < 0.8 else (196, 198, 204), 10, 3)
    if n > 1 and rng.random() < 0.55:   # parked in a row, same heading
        gap = length * rng.uniform(1.0, 1.25)

        def make(cx, cy, ang):
            heading = b.grid_angle + rng.choice([0, math.pi / 2, math.pi, -math.pi / 2]) \
                if rng.random() < 0.6 else ang
            nrm = np.array([-math.sin(heading), math.cos(heading)])
            return [_airplane(b, *(np.array([cx, cy]) + nrm * (i - (n - 1) / 2) * gap), heading,
                              length * rng.uniform(0.96, 1.04), colour) for i in range(n)]
        b.attempt(make, gap * n / 2, tag="row")
    else:
        for _ in range(n):
            ln = length * rng.uniform(0.85, 1.15)
            b.attempt(lambda cx, cy, ang: [_airplane(b, cx, cy, ang, ln, colour)], ln / 2)


def _tank(b: _Builder, cx, cy, r, colour) -> _Part:
    rng, u = b.rng, b.u
    dark = _shade(colour, 0.78)
    lit = -b.sun * 0.12 * r
    body = [_fill(dark, _circle(cx, cy, r)), _fill(colour, _circle(cx + lit[0], cy + lit[1], 0.88 * r))]
    if rng.random() < 0.3:   # floating roof
        body.append(_fill(_shade(colour, rng.uniform(0.62, 0.75)), _circle(cx, cy, 0.78 * r)))
    elif r >= 4 * u:
        body.append(_line(_shade(colour, 0.86), 1, True, _circle(cx, cy, 0.66 * r)))
    if r >= 5 * u:
        body.append(_fill(_shade(colour, 0.7), _circle(cx, cy, max(0.8, 0.1 * r))))
    h = r * rng.uniform(0.5, 0.9) * b.shadow_k
    return _Part("storagetank", body, [_fp(_circle(cx + b.sun[0] * h, cy + b.sun[1] * h, r))])


def _place_tanks(b: _Builder) -> None:
    rng, u = b.rng, b.u
    r = rng.uniform(4.5, 15.5) * u
    if r > 11 * u:
        rows, cols = [(1, 1), (1, 2), (2, 2), (1, 3)][rng.integers(4)]
    else:
        rows, cols = [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (1, 3), (2, 4), (3, 4), (1, 4)][rng.integers(9)]
    gap = r * rng.uniform(0.3, 1.1)
    sp = 2 * r + gap
    keep = rng.random((rows, cols)) > (0.15 if rows * cols > 2 else 0.0)
    keep[0, 0] = True
    colour = _col(rng, (226, 226, 222) if rng.random() < 0.75 else (200, 196, 182), 12, 4)
    pad_colour = _col(rng, [(150, 145, 130), (120, 122, 118), (176, 170, 150)][rng.integers(3)], 8)
    use_pad = rng.random() < 0.5

    def make(cx, cy, ang):
        parts = []
        for i in range(rows):
            for j in range(cols):
                if keep[i, j]:
                    p = _xf(np.array([[(j - (cols - 1) / 2) * sp, (i - (rows - 1) / 2) * sp]]), cx, cy, ang)[0]
                    parts.append(_tank(b, p[0], p[1], r * rng.uniform(0.95, 1.05), colour))
        if use_pad:
            pad = _rect(cx, cy, cols * sp + r * 0.6, rows * sp + r * 0.6, ang)
            return parts, {"underlay": [_fill(pad_colour, pad)]}
        return parts
    b.attempt(make, max(rows, cols) * sp / 2, tag="cluster" if rows * cols > 1 else None)


_COURT_COLOURS = [((70, 122, 76), (86, 140, 86)), ((70, 124, 80), (56, 96, 150)), ((46, 82, 130), (62, 108, 160)),
                  ((174, 96, 66), (186, 106, 72)), ((150, 72, 62), (72, 126, 82)), ((92, 130, 96), (66, 110, 132))]


def _court(b: _Builder, cx, cy, L, W, ang, outer, inner) -> _Part:
    u = b.u
    white = (232, 232, 226)
    Li, Wi = 0.76 * L, 0.66 * W
    body = [_fill(outer, _rect(cx, cy, L, W, ang)), _fill(inner, _rect(cx, cy, Li, Wi, ang))]
    lines = [_rect(cx, cy, Li, Wi, ang)]
    net = _xf(np.array([[0, -Wi / 2 - 0.06 * W], [0, Wi / 2 + 0.06 * W]]), cx, cy, ang)
    segs = [net]
    if L >= 20 * u:
        sv = 0.27 * Li
        segs.append(_xf(np.array([[-sv, -0.375 * Wi], [-sv, 0.375 * Wi]]), cx, cy, ang))
        segs.append(_xf(np.array([[sv, -0.375 * Wi], [sv, 0.375 * Wi]]), cx, cy, ang))
        segs.append(_xf(np.array([[-sv, 0], [sv, 0]]), cx, cy, ang))
    t = max(1, round(u))
    body.append(_line(white, t, True, *lines))
    body.append(_line(white, t, False, *segs))
    return _Part("tenniscourt", body)


def _place_courts(b: _Builder) -> None:
    rng, u = b.rng, b.u
    L = rng.uniform(19, 28) * u
    W = L * rng.uniform(0.48, 0.55)
    n = int(rng.choice([1, 2, 2, 3, 3, 4]))
    gap = rng.uniform(0.0, 2.0) * u
    oc, ic = _COURT_COLOURS[rng.integers(len(_COURT_COLOURS))]
    outer, inner = _col(rng, oc, 8, 4), _col(rng, ic, 8, 4)
    m = rng.uniform(1.0, 3.0) * u
    pad_colour = _col(rng, [(44, 70, 48), (104, 104, 100), outer][rng.integers(3)], 6)
    aligned = rng.random() < 0.6

    def make(cx, cy, ang):
        if aligned:
            ang = b.grid_angle + rng.choice([0, math.pi / 2])
        parts = []
        for i in range(n):
            p = _xf(np.array([[0, (i - (n - 1) / 2) * (W + gap)]]), cx, cy, ang)[0]
            parts.append(_court(b, p[0], p[1], L, W, ang, outer, inner))
        pad = _rect(cx, cy, L + 2 * m, n * W + (n - 1) * gap + 2 * m, ang)
        return parts, {"underlay": [_fill(pad_colour, pad)]}
    b.attempt(make, max(L, n * W) / 2, tag="row" if n > 1 else None)


_HULLS = [(226, 226, 222), (150, 150, 152), (118, 46, 40), (46, 46, 52), (42, 52, 82), (52, 90, 72), (190, 112, 52)]


def _ship(b: _Builder, cx, cy, ang, L, wake: bool) -> _Part:
    rng, u = b.rng, b.u
    B = L * rng.uniform(0.16, 0.23)
    hull_local = np.array([[L / 2, 0], [0.32 * L, B / 2], [-0.46 * L, B / 2], [-L / 2, 0.36 * B],
                           [-L / 2, -0.36 * B], [-0.46 * L, -B / 2], [0.32 * L, -B / 2]])
    hull = _xf(hull_local, cx, cy, ang)
    hc = _col(rng, _HULLS[rng.integers(len(_HULLS))], 10, 4)
    body = [_fill(hc, hull)]
    kind = rng.choice(["cargo", "tanker", "boat"]) if L >= 24 * u else "boat"
    white = _col(rng, (232, 232, 228), 6, 2)
    if kind == "cargo":
        body.append(_fill(_col(rng, (100, 100, 104), 12), _xf(hull_local * (0.86, 0.75), cx, cy, ang)))
        palette = [(180, 60, 50), (60, 100, 160), (200, 170, 60), (60, 140, 90), (220, 220, 215), (140, 80, 60)]
        x = -0.3 * L
        while x < 0.3 * L:
            w = 0.07 * L
            body.append(_fill(_col(rng, palette[rng.integers(len(palette))], 10),
                              _xf(np.array([[x, -0.34 * B], [x + w, -0.34 * B], [x + w, 0.34 * B], [x, 0.34 * B]]),
                                  cx, cy, ang)))
            x += w * 1.15
        body.append(_fill(white, _xf(np.array([[-0.44 * L, -0.38 * B], [-0.34 * L, -0.38 * B],
                                               [-0.34 * L, 0.38 * B], [-0.44 * L, 0.38 * B]]), cx, cy, ang)))
    elif kind == "tanker":
        deck = _col(rng, [(122, 52, 46), (72, 92, 72), (96, 96, 96)][rng.integers(3)], 8)
        body.append(_fill(deck, _xf(hull_local * (0.88, 0.78), cx, cy, ang)))
        pipe = _xf(np.array([[-0.3 * L, 0], [0.36 * L, 0]]), cx, cy, ang)
        body.append(_line((200, 200, 190), 1, False, pipe))
        body.append(_fill(white, _xf(np.array([[-0.45 * L, -0.38 * B], [-0.35 * L, -0.38 * B],
                                               [-0.35 * L, 0.38 * B], [-0.45 * L, 0.38 * B]]), cx, cy, ang)))
    else:
        cab = (60, 64, 72) if sum(hc) > 500 else white
        body.append(_fill(cab, _xf(np.array([[-0.22 * L, -0.28 * B], [0.1 * L, -0.28 * B],
                                             [0.1 * L, 0.28 * B], [-0.22 * L, 0.28 * B]]), cx, cy, ang)))
    sh = b.sun * max(0.8 * u, 0.12 * B) * b.shadow_k
    fx = []
    if wake:
        wl = L * rng.uniform(0.6, 1.8)
        trail = np.array([[-0.5 * L, 0.42 * B], [-0.5 * L - wl, 0.6 * B + 0.1 * wl],
                          [-0.5 * L - wl, -0.6 * B - 0.1 * wl], [-0.5 * L, -0.42 * B]])
        fx.append(_blend((236, 240, 240), rng.uniform(0.2, 0.35), _xf(trail, cx, cy, ang)))
        for sgn in (-1, 1):
            v = np.array([[0.3 * L, sgn * 0.5 * B], [-0.5 * L - 0.5 * wl, sgn * (0.5 * B + 0.22 * wl)]])
            fx.append(_blend((230, 236, 236), 0.2, _seg(*_xf(v, cx, cy, ang), max(1.0, 0.6 * u))))
    return _Part("ship", body, [_fp(hull + sh)], fx)


def _place_ships(b: _Builder) -> None:
    rng, u = b.rng, b.u
    n = int(rng.choice([1, 1, 2, 2, 3, 4, 5]))
    if n > 1 and rng.random() < 0.35:   # moored side by side
        L = rng.uniform(20, 45) * u
        gap = L * rng.uniform(0.22, 0.4)

        def make(cx, cy, ang):
            nrm = np.array([-math.sin(ang), math.cos(ang)])
            return [_ship(b, *(np.array([cx, cy]) + nrm * (i - (n - 1) / 2) * gap), ang + rng.choice([0, math.pi]),
                          L * rng.uniform(0.85, 1.1), False) for i in range(n)]
        b.attempt(make, max(L, n * gap) / 2, rule="water", tag="row")
    else:
        for _ in range(n):
            L = rng.uniform(14, 50) * u
            wake = bool(rng.random() < 0.5)
            b.attempt(lambda cx, cy, ang: [_ship(b, cx, cy, ang, L, wake)], L / 2, rule="water",
                      tag="wake" if wake else None)


_CARS = [(232, 232, 232), (226, 228, 230), (36, 36, 40), (172, 172, 176), (112, 112, 116), (168, 42, 36),
         (42, 70, 150), (30, 40, 80), (196, 186, 160), (60, 110, 70)]


def _vehicle(b: _Builder, cx, cy, ang, L, W) -> _Part:
    rng, u = b.rng, b.u
    colour = _col(rng, _CARS[rng.integers(len(_CARS))], 8, 3)
    glass = (44, 48, 58) if sum(colour) > 200 else (120, 126, 136)
    c = 0.18 * W
    oct_local = np.array([[L / 2, W / 2 - c], [L / 2 - c, W / 2], [-L / 2 + c, W / 2], [-L / 2, W / 2 - c],
                          [-L / 2, -W / 2 + c], [-L / 2 + c, -W / 2], [L / 2 - c, -W / 2], [L / 2, -W / 2 + c]])
    if L > 10.5 * u and rng.random() < 0.4:   # a truck: cab + trailer
        cab = _xf(np.array([[0.5, 0.45], [0.3, 0.45], [0.3, -0.45], [0.5, -0.45]]) * (L, W), cx, cy, ang)
        trailer = _xf(np.array([[0.27, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.27, -0.5]]) * (L, W), cx, cy, ang)
        body = [_fill(colour, cab), _fill(_col(rng, (222, 222, 218), 12), trailer)]
        shadow = [_fp(p + b.sun * 1.6 * u * b.shadow_k) for p in (cab, trailer)]
        return _Part("vehicle", body, shadow)
    body_poly = _xf(oct_local, cx, cy, ang)
    body = [_fill(colour, body_poly)]
    ws = _xf(np.array([[0.27, 0.3], [0.13, 0.36], [0.13, -0.36], [0.27, -0.3]]) * (L, W), cx, cy, ang)
    body.append(_fill(glass, ws))
    if L >= 7.5 * u:
        rw = _xf(np.array([[-0.3, 0.32], [-0.38, 0.3], [-0.38, -0.3], [-0.3, -0.32]]) * (L, W), cx, cy, ang)
        body.append(_fill(glass, rw))
    return _Part("vehicle", body, [_fp(body_poly + b.sun * max(0.8 * u, 0.12 * L) * b.shadow_k)])


def _place_vehicles_lot(b: _Builder) -> None:
    rng, u = b.rng, b.u
    L = rng.uniform(6.5, 11.5) * u
    W = L * rng.uniform(0.44, 0.5)
    sw, sd = W * rng.uniform(1.45, 1.8), L * 1.3
    nst = int(rng.integers(3, 10))
    rows = 2 if rng.random() < 0.45 else 1
    aisle = L * rng.uniform(1.0, 1.4)
    pad = 1.5 * u
    occ = rng.random((rows, nst)) < rng.uniform(0.45, 0.95)
    occ[rng.integers(rows), rng.integers(nst)] = True
    lot_colour = _col(rng, (86, 88, 90) if rng.random() < 0.7 else (150, 150, 146), 10, 3)
    length = nst * sw + 2 * pad
    depth = rows * sd + aisle + 2 * pad
    aligned = rng.random() < 0.6

    def make(cx, cy, ang):
        if aligned:
            ang = b.grid_angle + rng.choice([0, math.pi / 2])
        parts, lines = [], []
        for r in range(rows):
            # row 0 at the top edge of the lot, row 1 (if any) back to back below it; the aisle runs below
            y_row = -depth / 2 + pad + sd * (r + 0.5)
            for i in range(nst):
                x = -length / 2 + pad + sw * (i + 0.5)
                if occ[r, i]:
                    jx, jy = rng.uniform(-0.08, 0.08, 2) * (sw, sd)
                    p = _xf(np.array([[x + jx, y_row + jy]]), cx, cy, ang)[0]
                    heading = ang + math.pi / 2 + (math.pi if rng.random() < 0.5 else 0) + rng.normal(0, 0.04)
                    parts.append(_vehicle(b, p[0], p[1], heading, L * rng.uniform(0.92, 1.08), W))
            for i in range(nst + 1):
                x = -length / 2 + pad + sw * i
                y0 = -depth / 2 + pad + sd * r
                lines.append(_xf(np.array([[x, y0], [x, y0 + sd]]), cx, cy, ang))
        under = [_fill(lot_colour, _rect(cx, cy, length, depth, ang)),
                 _line((210, 210, 205), 1, False, *lines)]
        return parts, {"underlay": under, "paint": b.PAVED}
    b.attempt(make, max(length, depth) / 2, tag="lot")


def _place_vehicles_road(b: _Builder) -> int:
    rng, u = b.rng, b.u
    L = rng.uniform(6.5, 11.5) * u
    W = L * rng.uniform(0.44, 0.5)
    n = int(rng.integers(1, 7))
    for _ in range(25):
        p0, p1, width = b.roads[rng.integers(len(b.roads))]
        d = p1 - p0
        length = float(np.hypot(*d))
        d = d / length
        nrm = np.array([-d[1], d[0]])
        lane = rng.choice([-1, 1])
        # start near the point of the road closest to the image centre, drive along it
        t = float((np.array([b.S / 2, b.S / 2]) - p0) @ d) + rng.uniform(-0.45, 0.45) * b.S
        w = min(W, 0.4 * width)     # keep the car inside its lane
        parts = []
        for _k in range(n):
            c = p0 + d * t + nrm * lane * width * 0.25
            ang = math.atan2(d[1], d[0]) + (math.pi if lane < 0 else 0) + rng.normal(0, 0.03)
            ln = w / W * L * rng.uniform(0.9, 1.1)
            parts.append(_vehicle(b, c[0], c[1], ang, ln, w))
            t += ln + rng.uniform(2, 9) * u
        k = b.place(parts, rule="road", tag="road")
        if k:
            return k
    return 0


def _place_vehicles(b: _Builder) -> None:
    if b.roads and b.rng.random() < 0.5:
        if _place_vehicles_road(b) and b.rng.random() < 0.6:
            return
    _place_vehicles_lot(b)


_TRACKS = [(172, 86, 70), (186, 100, 76), (152, 72, 60), (162, 108, 80), (60, 108, 150)]


def _place_gtf(b: _Builder) -> None:
    rng, u = b.rng, b.u
    L = rng.uniform(72, 128) * u
    W = L * rng.uniform(0.5, 0.62)
    track = _col(rng, _TRACKS[rng.choice(5, p=[0.3, 0.25, 0.2, 0.15, 0.1])], 10, 4)
    grass = _col(rng, (78, 134, 72), 12, 6)
    t = W * rng.uniform(0.11, 0.16)
    stripes = rng.random() < 0.5
    use_pad = rng.random() < 0.45
    pad_colour = _col(rng, [(120, 120, 116), (70, 110, 60), (150, 146, 136)][rng.integers(3)], 8)

    def make(cx, cy, ang):
        body = [_fill(track, _stadium(cx, cy, L, W, ang, 20))]
        lanes = [_stadium(cx, cy, L - 2 * f * t, W - 2 * f * t, ang, 16) for f in (0.35, 0.68)]
        body.append(_line(_shade(track, 1.3), 1, True, *lanes))
        Li, Wi = L - 2 * t, W - 2 * t
        body.append(_fill(grass, _stadium(cx, cy, Li, Wi, ang, 18)))
        Ls, Ri = Li - Wi, Wi / 2
        if stripes:
            k = 8
            for i in range(0, k, 2):
                x0 = -Ls / 2 + Ls * i / k
                body.append(_fill(_shade(grass, 1.1), _xf(np.array([[x0, -Ri * 0.98], [x0 + Ls / k, -Ri * 0.98],
                                                                     [x0 + Ls / k, Ri * 0.98], [x0, Ri * 0.98]]),
                                                           cx, cy, ang)))
        pitch = _rect(cx, cy, Ls + 1.1 * Ri, 1.5 * Ri, ang)
        half = _xf(np.array([[0, -0.75 * Ri], [0, 0.75 * Ri]]), cx, cy, ang)
        white = (226, 228, 222)
        body.append(_line(white, 1, True, pitch, _circle(cx, cy, 0.22 * Ri)))
        body.append(_line(white, 1, False, half))
        part = _Part("groundtrackfield", body)
        if use_pad:
            return [part], {"underlay": [_fill(pad_colour, _rect(cx, cy, L + 8 * u, W + 8 * u, ang))]}
        return [part]
    b.attempt(make, L / 2, tries=40)


def _windmill(b: _Builder, bx, by, R, yaw, phase) -> _Part:
    rng, u = b.rng, b.u
    white = _col(rng, (236, 238, 238), 8, 2)
    base = np.array([bx, by])
    top = base + b.lean * R * rng.uniform(0.25, 0.55)
    tw = max(1.3 * u, 0.09 * R)
    ydir = np.array([math.cos(yaw), math.sin(yaw)])
    perp = np.array([-ydir[1], ydir[0]])
    hub = top + ydir * 0.12 * R
    f = rng.uniform(0.7, 1.0)   # rotor drawn nearly face-on so that the three blades stay readable
    body = [_fill(_shade(white, 0.9), _seg(base, top, tw))]
    blades = []
    for k in range(3):
        phi = phase + k * _TAU / 3
        tip = hub + R * (math.cos(phi) * perp + math.sin(phi) * f * ydir)
        blades.append(_seg(hub, tip, max(1.2 * u, 0.07 * R)))
    body.append(_fill(white, *blades))
    body.append(_fill(_shade(white, 0.95), _rect(top[0], top[1], 0.24 * R, max(1.5 * u, 0.1 * R), yaw)))
    H = R * rng.uniform(2.2, 3.4) * b.shadow_k
    sh_top = base + b.sun * H
    fs = rng.uniform(0.6, 1.0)
    shadow = [_seg(base, sh_top, max(1.4 * u, 0.11 * R))]
    for k in range(3):
        phi = phase + k * _TAU / 3
        tip = sh_top + R * (math.cos(phi) * perp + math.sin(phi) * fs * b.sun)
        shadow.append(_seg(sh_top, tip, max(1.4 * u, 0.09 * R)))
    return _Part("windmill", body, [_fp(p) for p in shadow])


def _place_windmills(b: _Builder) -> None:
    rng, u = b.rng, b.u
    n = int(rng.choice([1, 1, 2, 3, 4, 5]))
    R = rng.uniform(8, 15) * u
    yaw = float(rng.uniform(0, _TAU))
    if n > 1 and rng.random() < 0.5:   # a line of turbines
        gap = R * rng.uniform(2.4, 3.5)
        m = min(n, 4)

        def make(cx, cy, ang):
            d = np.array([math.cos(ang), math.sin(ang)])
            return [_windmill(b, *(np.array([cx, cy]) + d * (i - (m - 1) / 2) * gap), R * rng.uniform(0.92, 1.08),
                              yaw + rng.normal(0, 0.1), rng.uniform(0, _TAU)) for i in range(m)]
        b.attempt(make, gap * m / 2, tag="row")
    else:
        for _ in range(n):
            b.attempt(lambda cx, cy, ang: [_windmill(b, cx, cy, R * rng.uniform(0.9, 1.1), yaw + rng.normal(0, 0.1),
                                                     rng.uniform(0, _TAU))], R * 1.5)


def _chimney(b: _Builder, bx, by, D, Hp, colour, bands: bool, smoke: bool) -> _Part:
    rng, u = b.rng, b.u
    r, rt = D / 2, 0.8 * D / 2
    base = np.array([bx, by])
    top = base + b.lean * Hp
    nrm = np.array([-b.lean[1], b.lean[0]])
    side = 1.0 if float(nrm @ b.sun) > 0 else -1.0
    shaft = np.array([base + nrm * r, top + nrm * rt, top - nrm * rt, base - nrm * r])
    body = [_fill(colour, _circle(*base, r), shaft)]
    body.append(_fill(_shade(colour, 0.74), np.array([base + side * nrm * r, top + side * nrm * rt,
                                                       top + side * nrm * rt * 0.15, base + side * nrm * r * 0.15])))
    if bands:
        red = _col(rng, (182, 52, 42), 10)
        for f0, f1 in ((0.62, 0.72), (0.82, 0.92)):
            p0, p1 = base + b.lean * Hp * f0, base + b.lean * Hp * f1
            w0, w1 = r + (rt - r) * f0, r + (rt - r) * f1
            body.append(_fill(red, np.array([p0 + nrm * w0, p1 + nrm * w1, p1 - nrm * w1, p0 - nrm * w0])))
    body.append(_fill(_shade(colour, 1.08), _circle(*top, rt)))
    body.append(_fill((34, 32, 32), _circle(*top, max(0.7 * u, 0.5 * rt))))
    Hs = Hp * rng.uniform(2.2, 3.4) * b.shadow_k + D
    end = base + b.sun * Hs
    shadow = [_fp(_seg(base, end, D)), _fp(_circle(*end, rt))]
    fx = []
    if smoke:
        w = b.wind
        for j in range(5):
            c = top + w * D * (0.6 + 1.3 * j) + np.array([-w[1], w[0]]) * rng.normal(0, 0.3 * D)
            fx.append(_blend((226, 226, 222), 0.42 - 0.06 * j, _circle(*c, D * (0.55 + 0.3 * j))))
    return _Part("chimney", body, shadow, fx)


def _place_chimneys(b: _Builder) -> None:
    rng, u = b.rng, b.u
    n = int(rng.choice([1, 1, 1, 2, 2, 3]))
    D = rng.uniform(4.5, 8.5) * u
    Hp = min(D * rng.uniform(2.2, 3.6), 26 * u)
    colour = _col(rng, [(178, 176, 170), (150, 148, 144), (150, 84, 64), (200, 198, 192)][rng.integers(4)], 10, 4)
    bands = bool(rng.random() < 0.35)
    smoke = bool(rng.random() < 0.35)
    gap = D * rng.uniform(2.5, 5.0)

    def make(cx, cy, ang):
        d = np.array([math.cos(ang), math.sin(ang)])
        return [_chimney(b, *(np.array([cx, cy]) + d * (i - (n - 1) / 2) * gap), D * rng.uniform(0.92, 1.08),
                         Hp * rng.uniform(0.9, 1.1), colour, bands, smoke and i == 0) for i in range(n)]
    b.attempt(make, Hp + n * gap / 2, tag="smoke" if smoke else None)


_PLACERS = {"groundtrackfield": _place_gtf, "airplane": _place_airplanes, "tenniscourt": _place_courts,
            "storagetank": _place_tanks, "windmill": _place_windmills, "chimney": _place_chimneys,
            "ship": _place_ships, "vehicle": _place_vehicles}
_ORDER = ("groundtrackfield", "airplane", "tenniscourt", "storagetank", "windmill", "chimney", "ship", "vehicle")


# --------------------------------------------------------------------------------------------------
# distractors: trees and buildings (no boxes)

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


# --------------------------------------------------------------------------------------------------
# captions

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve"]
_PLURAL = {c: CLASS_WORDS[c] + "s" for c in DEMO_CLASSES}
_PLURAL["chimney"] = "chimneys"
_PREFIXES = ["an aerial image of", "aerial view of", "a satellite image of", "satellite view of",
             "a remote sensing image of", "an overhead view of", "a top-down photo of",
             "a high-resolution satellite image showing", "an aerial photograph showing",
             "a remote sensing scene with", "an image taken from above showing", "overhead imagery of"]
_CONTEXT = {
    "grass": [" on grass", " in a park", " surrounded by grass", " among trees and lawns"],
    "fields": [" among farmland", " in the countryside", " between crop fields"],
    "soil": [" on bare ground", " in a dry area", " on bare soil"],
    "urban": [" in a city", " in an urban area", " among roads and buildings"],
    "industrial": [" in an industrial area", " at an industrial site"],
    "apron": [" on concrete", " on a concrete apron"],
    "sea": [" at sea", " on open water"],
    "shore": [" near the shore", " along the coast", " by the water"],
    "river": [" on a river", " by a river"],
}
_ADJ = {"airplane": ["white ", "parked ", "large "], "storagetank": ["white ", "round ", "oil "],
        "tenniscourt": ["outdoor "], "ship": ["large ", "small "], "vehicle": ["small "],
        "groundtrackfield": ["large "], "windmill": ["white ", "tall "], "chimney": ["tall "]}


def _phrase(rng: np.random.Generator, cls: str, n: int, tags: set) -> str:
    word, plural = CLASS_WORDS[cls], _PLURAL[cls]
    adj = _ADJ[cls][rng.integers(len(_ADJ[cls]))] if rng.random() < 0.2 else ""
    if cls == "vehicle" and "lot" in tags and rng.random() < 0.4:
        adj = "parked "
    if n == 1:
        r = rng.random()
        art = "one " if r < 0.12 else "a single " if r < 0.18 else ("an " if (adj or word)[0] in "aeiou" else "a ")
        text = art + adj + word
    else:
        r = rng.random()
        if n <= 12 and r < 0.6:
            q = _NUMBERS[n]
        elif n == 2:
            q = "a pair of" if r < 0.8 else "two"
        else:
            opts = ["several", "a group of"] + (["many"] if n >= 6 else ["a few"] if n <= 4 else [])
            if "row" in tags:
                opts.append("a row of")
            if cls == "storagetank" and "cluster" in tags:
                opts.append("a cluster of")
            q = opts[rng.integers(len(opts))]
        text = f"{q} {adj}{plural}"
    if rng.random() < 0.5:
        if cls == "vehicle" and "lot" in tags:
            text += " in a parking lot"
        elif cls == "vehicle" and "road" in tags:
            text += " on a road"
        elif cls == "chimney" and "smoke" in tags:
            text += " with smoke" if n == 1 else " releasing smoke"
        elif cls == "ship" and "wake" in tags:
            text += " leaving a wake" if n == 1 else " leaving wakes"
    return text


def _caption(rng: np.random.Generator, counts: dict[str, int], tags: dict[str, set], context: str) -> str:
    classes = list(counts)
    order = rng.permutation(len(classes))
    items = [_phrase(rng, classes[i], counts[classes[i]], tags.get(classes[i], set())) for i in order]
    if len(items) == 1:
        listing = items[0]
    elif len(items) == 2:
        listing = items[0] + [" and ", " near ", " next to ", " beside ", " with "][rng.integers(5)] + items[1]
    else:
        listing = ", ".join(items[:-1]) + " and " + items[-1]
    ctx = ""
    if rng.random() < 0.4:
        opts = _CONTEXT[context]
        ctx = opts[rng.integers(len(opts))]
    r = rng.random()
    if r < 0.7:
        text = f"{_PREFIXES[rng.integers(len(_PREFIXES))]} {listing}{ctx}"
    elif r < 0.82:
        text = f"{listing}{ctx}, seen from above"
    elif r < 0.92:
        text = f"{listing}{ctx} in a satellite image"
    else:
        text = f"this aerial image shows {listing}{ctx}"
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.5 else "")


# --------------------------------------------------------------------------------------------------
# scenes

_BG_FOR = {
    "airplane": ["apron", "apron", "apron", "grass", "soil"],
    "storagetank": ["industrial", "industrial", "soil", "grass"],
    "tenniscourt": ["grass", "urban", "grass"],
    "ship": ["grass", "soil", "urban", "industrial"],
    "vehicle": ["urban", "industrial", "apron", "grass", "soil"],
    "groundtrackfield": ["grass", "urban", "soil"],
    "windmill": ["fields", "fields", "grass", "soil"],
    "chimney": ["industrial", "urban", "soil"],
}


def render_scene(rng: np.random.Generator, size: int = 224, plain: bool = False) -> Scene:
    """Draw one random aerial scene of ``size`` x ``size`` px with its object boxes and a caption.

    Everything random comes from ``rng``. With ``plain=True`` the same scene (same boxes and caption for
    the same rng state) is drawn with only the objects' bodies on a flat :data:`PLAIN_BACKGROUND`: no
    background, shadows, wakes, smoke, distractors, colour jitter, blur or noise; meant for checking
    that the boxes are tight. Every scene has at least one object.
    """
    size = int(size)
    if size < 64:
        raise ValueError(f"size must be at least 64 px, got {size}")
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
        pool = [bg for c in classes for bg in _BG_FOR[c]]
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
    for c in _ORDER:
        if c in classes:
            _PLACERS[c](b)
    if not b.objects:
        return None
    if water != "full":
        _distractors(b, bg)
    counts = Counter(c for c, _ in b.objects)
    context = {"full": "sea", "shore": "shore", "river": "river"}.get(water or "", bg) \
        if "ship" in counts else bg
    return b, _caption(rng, {c: counts[c] for c in DEMO_CLASSES if c in counts}, b.tags, context)


# --------------------------------------------------------------------------------------------------
# dataset in DIOR's release layout

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
        raise ValueError(f"count must be 1..99999 (DIOR ids have 5 digits), got {count}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
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
