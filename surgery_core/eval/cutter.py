"""Compiled kernels of the box cutter (numba): order statistics, level maps, components at nested thresholds.

Cutting boxes at ten percentiles of every (image, class) map is the hot loop of a DIOR-scale run (about 2.3 M
maps for ten methods on DIOR-test). Three ideas make it one pass per map instead of ten, with results equal,
box for box and bit for bit, to thresholding, OpenCV morphology and OpenCV labelling done once per threshold:

* **Level map.** With thresholds sorted ascending ``s_0 <= ... <= s_{T-1}``, a pixel's level is the number of
  thresholds at or below its value; ``value >= s_i`` exactly when ``level > i``, ties and equal thresholds
  included (:func:`level_map`).
* **Morphology commutes with thresholds.** Close and open with a flat rectangle are built from running max and
  min, which commute with thresholding (threshold decomposition): closing-then-opening the level map once
  and then taking ``level > i`` gives the closed-then-opened mask of every threshold, with OpenCV's borders
  (a max ignores the outside, a min counts it as foreground: the uint8 border values 0 and 255).
* **Nested masks.** Morphology is increasing, so the mask of a higher threshold lies inside the one below:
  the runs of threshold ``i + 1`` are found by scanning only the runs of threshold ``i`` (:func:`cut_levels`).

Components are labelled on horizontal runs with union-find (a run joins the runs of the row above that it
touches: overlapping columns for 4-connectivity, overlapping or diagonal for 8) and numbered in raster order
of their first pixel, as the run-based labelling before it did. A component's mean is the sum of its runs'
sums, each run summed left to right in float64 and the runs added in raster order, over its pixel count.

The kernels compile on first use (a few seconds) into numba's on-disk cache next to this file; later
processes, spawned workers included, load them from there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Most thresholds one level map holds (uint8 levels); :func:`surgery_core.eval.boxes.cut`
#: cuts longer lists in groups.
MAX_LEVELS = 255


@njit(cache=True, nogil=True)
def order_stats(flat, kth):  # pragma: no cover - compiled; tested through boxes.order_statistics
    """The ``kth`` smallest values (sorted unique int64 indices) of a 1-D NaN-free float32 array, exactly.

    A 4096-bucket histogram over the value range locates each order statistic's bucket (bucketing is
    monotone in value, all that exactness needs); only the values of those buckets are sorted.
    """
    n = flat.shape[0]
    lo = flat[0]
    hi = flat[0]
    for i in range(n):
        v = flat[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    out = np.empty(kth.shape[0], np.float32)
    span = np.float64(hi) - np.float64(lo)
    if not span > 0.0:
        out[:] = lo
        return out
    n_buckets = 4096
    scale = n_buckets / span
    bucket = np.empty(n, np.int32)
    counts = np.zeros(n_buckets, np.int64)
    for i in range(n):
        b = int((np.float64(flat[i]) - lo) * scale)
        if b >= n_buckets:
            b = n_buckets - 1
        bucket[i] = b
        counts[b] += 1
    below = np.zeros(n_buckets + 1, np.int64)  # below[b]: values in buckets before b
    for b in range(n_buckets):
        below[b + 1] = below[b] + counts[b]
    need = np.zeros(n_buckets, np.bool_)
    kb = np.empty(kth.shape[0], np.int64)
    for j in range(kth.shape[0]):
        b = np.searchsorted(below, kth[j], side="right") - 1
        kb[j] = b
        need[b] = True
    start = np.zeros(n_buckets, np.int64)
    total = 0
    for b in range(n_buckets):
        start[b] = total
        if need[b]:
            total += counts[b]
    cand = np.empty(total, np.float32)
    fill = start.copy()
    for i in range(n):
        b = bucket[i]
        if need[b]:
            cand[fill[b]] = flat[i]
            fill[b] += 1
    for b in range(n_buckets):
        if need[b] and counts[b] > 1:
            cand[start[b]:start[b] + counts[b]] = np.sort(cand[start[b]:start[b] + counts[b]])
    for j in range(kth.shape[0]):
        b = kb[j]
        out[j] = cand[start[b] + kth[j] - below[b]]
    return out


@njit(cache=True, nogil=True)
def level_map(wmap, sorted_thresholds):  # pragma: no cover - compiled
    """uint8 ``[h, w]``: how many of the ascending thresholds (at most :data:`MAX_LEVELS`) are ``<=`` each
    pixel of the float32 map."""
    h, w = wmap.shape
    out = np.zeros((h, w), np.uint8)
    for i in range(sorted_thresholds.shape[0]):
        t = sorted_thresholds[i]
        for y in range(h):
            for x in range(w):
                out[y, x] += wmap[y, x] >= t
    return out


@njit(cache=True, nogil=True)
def cut_levels(levels, values, n_levels, conn8, use_max):  # pragma: no cover - compiled
    """Connected components of ``levels > i`` for ``i = 0 .. n_levels - 1``, each with its box and score.

    levels: uint8 ``[h, w]`` C-contiguous (a level map, morphology applied); values: float32 ``[h, w]``, what
    scores average (or take the max of, ``use_max``). Returns, per component, ``level`` int32 (``i``),
    ``rect`` int32 ``[K, 5]`` = ``(left, top, right, bottom, seed_x)`` in pixels with ``right``/``bottom``
    one past the last column/row and ``(seed_x, top)`` the first pixel, and ``score`` float64; ordered by
    level, then raster order of first pixels.
    """
    h, w = levels.shape
    cap_runs = h * ((w + 1) // 2) + h + 1
    # Runs of the level below (to scan) and of this level (found): swapped after each level.
    prow = np.empty(cap_runs, np.int32)
    px0 = np.empty(cap_runs, np.int32)
    px1 = np.empty(cap_runs, np.int32)
    row = np.empty(cap_runs, np.int32)
    x0 = np.empty(cap_runs, np.int32)
    x1 = np.empty(cap_runs, np.int32)
    run_val = np.empty(cap_runs, np.float64)
    parent = np.empty(cap_runs, np.int32)
    c_left = np.empty(cap_runs, np.int32)
    c_right = np.empty(cap_runs, np.int32)
    c_bottom = np.empty(cap_runs, np.int32)
    acc = np.empty(cap_runs, np.float64)
    count = np.empty(cap_runs, np.float64)
    cap = 1024
    o_level = np.empty(cap, np.int32)
    o_rect = np.empty((cap, 5), np.int32)
    o_score = np.empty(cap, np.float64)
    n_out = 0
    for y in range(h):  # below level 0 every pixel is "on": one run per row
        prow[y] = y
        px0[y] = 0
        px1[y] = w
    pn = h
    for li in range(n_levels):
        nr = 0
        last_y = -2  # the last row holding runs before the current one, and its runs [last_start, last_end)
        last_start = 0
        last_end = 0
        cur_y = -1
        cur_start = 0
        for q in range(pn + 1):
            y = prow[q] if q < pn else -1
            if y != cur_y:  # the runs of row cur_y are complete: join them to the row above's
                if nr > cur_start:
                    if last_y == cur_y - 1:
                        i = last_start
                        j = cur_start
                        while i < last_end and j < nr:
                            if conn8:
                                touch = x0[i] <= x1[j] and x0[j] <= x1[i]
                            else:
                                touch = x0[i] < x1[j] and x0[j] < x1[i]
                            if touch:
                                ri = i
                                while parent[ri] != ri:
                                    parent[ri] = parent[parent[ri]]
                                    ri = parent[ri]
                                rj = j
                                while parent[rj] != rj:
                                    parent[rj] = parent[parent[rj]]
                                    rj = parent[rj]
                                if ri < rj:  # the root is a set's first run in raster order
                                    parent[rj] = ri
                                elif rj < ri:
                                    parent[ri] = rj
                            if x1[i] <= x1[j]:
                                i += 1
                            else:
                                j += 1
                    last_y = cur_y
                    last_start = cur_start
                    last_end = nr
                cur_y = y
                cur_start = nr
            if q == pn:
                break
            x = px0[q]
            end = px1[q]
            while x < end:
                if levels[y, x] > li:
                    a = x
                    v = values[y, x]
                    s = np.float64(v)
                    x += 1
                    while x < end and levels[y, x] > li:
                        u = values[y, x]
                        if use_max:
                            if u > v:
                                v = u
                        else:
                            s += np.float64(u)
                        x += 1
                    row[nr] = y
                    x0[nr] = a
                    x1[nr] = x
                    run_val[nr] = np.float64(v) if use_max else s
                    parent[nr] = nr
                    nr += 1
                else:
                    x += 1
        if nr == 0:  # higher levels lie inside this one: nothing more to find
            break
        k = 0
        for r in range(nr):
            root = parent[r]
            if parent[root] != root:
                while parent[root] != root:
                    root = parent[root]
                parent[r] = root
            if root == r:
                c_left[r] = x0[r]
                c_right[r] = x1[r]
                acc[r] = -np.inf if use_max else 0.0
                count[r] = 0.0
                k += 1
            else:
                c_left[root] = min(c_left[root], x0[r])
                c_right[root] = max(c_right[root], x1[r])
            c_bottom[root] = row[r] + 1
            if use_max:
                acc[root] = max(acc[root], run_val[r])
            else:
                acc[root] += run_val[r]
            count[root] += x1[r] - x0[r]
        if n_out + k > cap:
            while n_out + k > cap:
                cap *= 2
            grown_level = np.empty(cap, np.int32)
            grown_level[:n_out] = o_level[:n_out]
            o_level = grown_level
            grown_rect = np.empty((cap, 5), np.int32)
            grown_rect[:n_out] = o_rect[:n_out]
            o_rect = grown_rect
            grown_score = np.empty(cap, np.float64)
            grown_score[:n_out] = o_score[:n_out]
            o_score = grown_score
        c = n_out
        for r in range(nr):
            if parent[r] == r:
                o_level[c] = li
                o_rect[c, 0] = c_left[r]
                o_rect[c, 1] = row[r]
                o_rect[c, 2] = c_right[r]
                o_rect[c, 3] = c_bottom[r]
                o_rect[c, 4] = x0[r]
                o_score[c] = acc[r] if use_max else acc[r] / count[r]
                c += 1
        n_out += k
        prow, row = row, prow
        px0, x0 = x0, px0
        px1, x1 = x1, px1
        pn = nr
    return o_level[:n_out], o_rect[:n_out], o_score[:n_out]
