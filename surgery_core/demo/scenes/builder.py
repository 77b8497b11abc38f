"""The scene under construction: placement on free ground, occupancy, rendering and the sensor look."""

from __future__ import annotations

import math

import cv2
import numpy as np

from surgery_core.demo.scenes.geometry import _RING, _SHIFT, _TAU, _draw, _Part

#: RGB colour of the flat background used by ``render_scene(..., plain=True)``; no object uses it.
PLAIN_BACKGROUND: tuple[int, int, int] = (255, 0, 255)


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
