"""Backgrounds of the demo scenes: grass, fields, soil, urban, industrial, apron; roads and water."""

from __future__ import annotations

import math

import cv2
import numpy as np

from surgery_core.demo.scenes.builder import _Builder
from surgery_core.demo.scenes.geometry import _SHIFT, _TAU, _blob, _col, _fp, _fps, _seg, _shade, _xf


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
