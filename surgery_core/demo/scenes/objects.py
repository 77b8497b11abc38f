"""The objects of the demo scenes, one drawing function and one placer per class.

Sizes are in px of a 224 px scene, multiplied by the builder's scale ``b.u``. A placer draws a random number
of its objects into the scene under construction; :mod:`.classes` ties each placer to its class record.
"""

from __future__ import annotations

import math

import numpy as np

from surgery_core.demo.scenes.builder import _Builder
from surgery_core.demo.scenes.geometry import (
    _TAU,
    _blend,
    _circle,
    _col,
    _fill,
    _fp,
    _line,
    _Part,
    _rect,
    _seg,
    _shade,
    _stadium,
    _xf,
)


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
