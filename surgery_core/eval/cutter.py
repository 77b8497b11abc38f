"""Compiled kernels of the box cutter (numba): order statistics, level maps, components at nested thresholds.

Cutting boxes at ten percentiles of every (image, class) map is the hot loop of a DIOR-scale run (about 2.3 M
maps for ten methods on DIOR-test). These ideas make it one pass per map instead of ten, with results equal,
box for box and bit for bit, to thresholding, OpenCV morphology and OpenCV labelling done once per threshold:

* **Level map.** With thresholds sorted ascending ``s_0 <= ... <= s_{T-1}``, a pixel's level is the number of
  thresholds at or below its value; ``value >= s_i`` exactly when ``level > i``, ties and equal thresholds
  included (:func:`level_map`).
* **Morphology commutes with thresholds.** Close and open with a flat rectangle are built from running max and
  min, which commute with thresholding (threshold decomposition): closing-then-opening the level map once
  and then taking ``level > i`` gives the closed-then-opened mask of every threshold, with OpenCV's borders
  (a max ignores the outside, a min counts it as foreground: the uint8 border values 0 and 255).
* **Every level in one pass.** Morphology is increasing, so the masks are nested: a pixel of level ``L`` is in
  the masks of the thresholds below ``L``. One pass over each row finds the columns where the level changes; at
  each change the runs of the levels in between close or open (:func:`_label`), and a run that closes joins the
  touching runs of its level in the row above (union-find), so the work follows the runs, not levels x pixels.
* **Exact sums in any order.** A component's mean is the sum of its runs' sums, each run summed left to right in
  float64 and the runs added in raster order, over its pixel count. When every value summed is a whole number of
  units ``2**-k`` and no sum can reach ``2**52`` units (:func:`_sum_unit`), every such float64 sum is exact, so
  the same bits come from integer prefix sums of each row (a run's sum is a difference of two), and components
  gather their boxes and sums as runs join them instead of in a last pass over every run; the few maps where
  a summed value is not a whole number of units (a value far below the map's largest) are summed pixel by pixel
  in that order instead. A max is order-free: one max per stretch of constant level serves every open run.

Components are labelled on horizontal runs with union-find (a run joins the runs of the row above that it
touches: overlapping columns for 4-connectivity, overlapping or diagonal for 8) and numbered in raster order
of their first pixel, as the run-based labelling before it did.

Where the time goes (#27, a 224 px map of the benchmark at ten levels, one process, 2-core EPYC): about 9,700
runs over all levels, 13,600 level changes and 430 components per map; the labelling takes about 355 us, of
which about 95 us are the two passes over the pixels and the rest, about 27 ns per run, the opening, closing
and joining of runs (branchy: the union-find search of the row above). Its node arrays are sized for the worst
case (every other pixel a run, at every level) and kept per thread between calls (:func:`_run_label`).

The kernels compile on first use (about 20 s on a 2-core machine) into numba's on-disk cache next to this file;
later processes, spawned workers included, load them from there.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import njit

#: Most thresholds one level map holds (uint8 levels); :func:`surgery_core.eval.boxes.cut`
#: cuts longer lists in groups.
MAX_LEVELS = 255


#: Float32 bit patterns (as int32) turned into keys that order like the floats they encode: finite keys lie
#: strictly between those of -inf and +inf, NaNs outside.
_KEY_NEG_INF = -2139095041  # key of -inf (bits 0xFF800000)
_KEY_POS_INF = 0x7F800000  # key of +inf


@njit(cache=True, nogil=True)
def _order_stats(flat, kth):  # pragma: no cover - compiled
    """``(finite, values)``: the ``kth`` smallest values (sorted unique int64 indices) of a 1-D float32 array,
    exactly; ``finite`` False (values unset) when the array holds a NaN or an infinity.

    A 4096-bucket histogram over the value range locates each order statistic's bucket (bucketing is
    monotone in value, all that exactness needs); only the values of those buckets are sorted. The range comes
    from the float bits read as integers that order like the floats (one vectorised pass that also finds
    NaNs and infinities); the histogram counts into four interleaved tables, so that runs of equal buckets,
    common in smooth maps, do not wait on each other.
    """
    n = flat.shape[0]
    out = np.empty(kth.shape[0], np.float32)
    bits = flat.view(np.int32)
    kmin = np.int32(0x7FFFFFFF)
    kmax = np.int32(-0x7FFFFFFF - 1)
    for i in range(n):
        b = bits[i]
        key = b ^ ((b >> 31) & np.int32(0x7FFFFFFF))
        kmin = min(kmin, key)
        kmax = max(kmax, key)
    if kmin <= _KEY_NEG_INF or kmax >= _KEY_POS_INF:
        return False, out
    ends = np.empty(2, np.int32)
    ends[0] = kmin ^ ((kmin >> 31) & np.int32(0x7FFFFFFF))  # a key is its own inverse
    ends[1] = kmax ^ ((kmax >> 31) & np.int32(0x7FFFFFFF))
    lo, hi = ends.view(np.float32)
    span = np.float64(hi) - np.float64(lo)
    if not span > 0.0:
        out[:] = lo
        return True, out
    n_buckets = 4096
    scale = n_buckets / span
    lo64 = np.float64(lo)
    bucket = np.empty(n, np.int32)
    for i in range(n):
        bucket[i] = min(np.int32((np.float64(flat[i]) - lo64) * scale), n_buckets - 1)
    counts = np.zeros((4, n_buckets), np.int64)
    n4 = n - n % 4
    for i in range(0, n4, 4):
        counts[0, bucket[i]] += 1
        counts[1, bucket[i + 1]] += 1
        counts[2, bucket[i + 2]] += 1
        counts[3, bucket[i + 3]] += 1
    for i in range(n4, n):
        counts[0, bucket[i]] += 1
    below = np.zeros(n_buckets + 1, np.int64)  # below[b]: values in buckets before b
    for b in range(n_buckets):
        below[b + 1] = below[b] + counts[0, b] + counts[1, b] + counts[2, b] + counts[3, b]
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
            total += below[b + 1] - below[b]
    cand = np.empty(total, np.float32)
    fill = start.copy()
    for i in range(n):
        b = bucket[i]
        if need[b]:
            cand[fill[b]] = flat[i]
            fill[b] += 1
    for b in range(n_buckets):
        c = below[b + 1] - below[b]
        if need[b] and c > 1:
            cand[start[b]:start[b] + c] = np.sort(cand[start[b]:start[b] + c])
    for j in range(kth.shape[0]):
        b = kb[j]
        out[j] = cand[start[b] + kth[j] - below[b]]
    return True, out


@njit(cache=True, nogil=True)
def percentile_values(flat, kth, lo_pos, hi_pos, t, one_minus_t, upper):  # pragma: no cover - compiled
    """float32 percentiles of a 1-D float32 array from a plan (``boxes._percentile_plan``: the order statistics
    ``kth``, each percentile's two neighbours among them, its float32 weights and which side numpy's lerp
    starts from), equal bit for bit to ``np.percentile``; empty when the array holds a NaN or an infinity.

    numpy's ``_lerp`` in float32: ``a + d * t`` below ``t = 0.5``, ``b - d * (1 - t)`` from 0.5 up, each
    operation rounded to float32 (numba keeps float32 arithmetic in float32 and fuses no multiply-add).
    """
    finite, stats = _order_stats(flat, kth)
    if not finite:
        return np.empty(0, np.float32)
    out = np.empty(lo_pos.shape[0], np.float32)
    for j in range(lo_pos.shape[0]):
        a = stats[lo_pos[j]]
        b = stats[hi_pos[j]]
        d = b - a
        out[j] = b - d * one_minus_t[j] if upper[j] else a + d * t[j]
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


def cut_levels(levels, values, n_levels, conn8, use_max):
    """Connected components of ``levels > i`` for ``i = 0 .. n_levels - 1``, each with its box and score.

    levels: uint8 ``[h, w]`` C-contiguous (a level map, morphology applied); values: float32 ``[h, w]``, what
    scores average (or take the max of, ``use_max``). Returns, per component, ``level`` int32 (``i``),
    ``rect`` int32 ``[K, 5]`` = ``(left, top, right, bottom, seed_x)`` in pixels with ``right``/``bottom``
    one past the last column/row and ``(seed_x, top)`` the first pixel, and ``score`` float64; ordered by
    level, then raster order of first pixels.

    Means come from exact integer sums when the values allow it (:func:`_sum_unit`), else from float64 sums
    pixel by pixel in the reference order (each run left to right, the runs in raster order). Plain Python
    around the compiled kernels: a compiled caller would have numba inline :func:`_label` once per mode, which
    made the first compilation take about four times as long (about 20 s instead of 5 s).
    """
    k = _sum_unit(values)
    if use_max:  # a max is the same in any order: by segments when the map is finite (NaN-free)
        level, rect, score, _ = _run_label(levels, values, n_levels, conn8, _MAX if k != _NO_UNIT else _MAX_PIXELS, 0)
        return level, rect, score
    if k != _NO_UNIT:
        level, rect, score, exact = _run_label(levels, values, n_levels, conn8, _EXACT, k)
        if exact:
            return level, rect, score
    level, rect, score, _ = _run_label(levels, values, n_levels, conn8, _SEQUENTIAL, 0)
    return level, rect, score


_EXACT, _SEQUENTIAL, _MAX, _MAX_PIXELS = 0, 1, 2, 3  # how _label scores components
_NO_UNIT = -100000

#: Node slots (per thread) kept between calls of :func:`_label`, at most: a 224 px map at ten levels needs its
#: worst case of about 250,000; an 800 px map at ten levels, 3.2 M (the slots are reserved, pages are touched
#: only as nodes are made).
_KEEP_NODES = 4_000_000
_scratch = threading.local()


def _run_label(levels, values, n_levels, conn8, mode, k_unit):
    """:func:`_label` with this thread's node buffers, sized for the worst case of the map and reused from call to
    call: allocated anew on every call, the several megabytes of a 224 px map cost a fresh mapping and its page
    faults each time (about a fifth of the labelling in a process with glibc's default malloc settings)."""
    h, w = levels.shape
    cap = n_levels * (h * ((w + 1) // 2) + 1)  # every other pixel a run, at every level
    nodes = getattr(_scratch, "nodes", None)
    if nodes is None or nodes[0].shape[1] < cap:
        nodes = np.empty((9, cap), np.int64), np.empty(cap, np.float64)
        if cap <= _KEEP_NODES:
            _scratch.nodes = nodes
    return _label(levels, values, n_levels, conn8, mode, k_unit, *nodes)


@njit(cache=True, nogil=True)
def _sum_unit(values):  # pragma: no cover - compiled
    """The ``k`` for exact sums in units of ``2**-k``: every sum of the map's values stays below ``2**52`` units
    (``k = 52 - ceil-ish(log2(max|v| * pixels))``); ``_NO_UNIT`` when the map holds a NaN or an infinity.

    Whether each summed value is a whole number of units is checked where it is summed (:func:`_label`): then
    every partial sum, in any order, is exact in float64 as in int64, so the integer sums equal, bit for bit,
    float64 sums taken pixel by pixel in any order.
    """
    bits = values.reshape(-1).view(np.int32)
    hi = np.int32(0)
    for i in range(bits.shape[0]):
        hi = max(hi, bits[i] & np.int32(0x7FFFFFFF))  # |v| orders like its bits
    if hi >= _KEY_POS_INF:
        return _NO_UNIT
    top = np.empty(1, np.int32)
    top[0] = hi
    return 52 - math.frexp(np.float64(top.view(np.float32)[0]) * bits.shape[0])[1]


@njit(cache=True, nogil=True)
def _label(levels, values, n_levels, conn8, mode, k_unit, nodes, node_values):  # pragma: no cover - compiled
    """The labelling of :func:`cut_levels`, one pass over the rows; returns ``(level, rect, score, exact)``.

    nodes: int64 ``[9, cap]``, node_values: float64 ``[cap]``, scratch of at least ``cap = n_levels * (h *
    ((w + 1) // 2) + 1)`` slots (:func:`_run_label`), overwritten.

    Per row: the columns where the level changes (a branch-free pass), then at each change the runs of the
    levels between the old and the new level close (the new one lower) or open (higher): the runs of a level
    are the maximal stretches above it, and a pixel of level ``L`` lies in the runs of every level below ``L``.
    A run that closes joins, by union-find (the older node is the root, so roots are first runs in raster
    order), the runs of its level in the row above that it touches (overlapping columns for 4-connectivity,
    overlapping or diagonal for 8).

    Scores by ``mode``: ``_EXACT``: a run's sum is the difference of two prefix sums of the row in integer
    units of ``2**-k_unit`` (each value summed checked to be a whole number of units, else ``exact`` comes
    back False and the caller sums again ``_SEQUENTIAL``); integer sums are the same in any order, so the nodes
    are components that gather their box, sum and count as runs join them (a run that touches none starts one),
    not runs kept for a last pass (:func:`_components`); ``_SEQUENTIAL``: each run summed left to right in
    float64; ``_MAX``: each run's max, from the max of each stretch of constant level (finite maps: a max of
    maxes is the max); ``_MAX_PIXELS``: each run's max pixel by pixel, the first pixel taken as it is (a NaN
    stays, as in the reference).
    """
    h, w = levels.shape
    T = n_levels
    use_max = mode == _MAX or mode == _MAX_PIXELS
    per_row = (w + 1) // 2 + 1  # runs of one level in one row, at most
    x0 = nodes[0]
    x1 = nodes[1]
    rrow = nodes[2]
    rlev = nodes[3]
    parent = nodes[4]
    rval = node_values
    # _EXACT: nodes are components (x0, x1, rrow, rlev: left, right, top, level), with these
    rsum = nodes[5]
    bottom = nodes[6]
    seed = nodes[7]
    count = nodes[8]
    # the runs of the row above and of this row, per level (level i at [i * per_row, ...))
    prv_x0 = np.empty(T * per_row, np.int64)
    prv_x1 = np.empty(T * per_row, np.int64)
    prv_id = np.empty(T * per_row, np.int64)
    cur_x0 = np.empty(T * per_row, np.int64)
    cur_x1 = np.empty(T * per_row, np.int64)
    cur_id = np.empty(T * per_row, np.int64)
    n_prev = np.zeros(T, np.int64)
    n_cur = np.zeros(T, np.int64)
    ptr = np.zeros(T, np.int64)  # first run of the row above that a later run of this row may touch
    open_x = np.empty(T, np.int64)
    acc_open = np.empty(T, np.float64)
    chg = np.empty(w + 2, np.int64)
    lrow = np.empty(w + 1, np.int64)
    pre = np.empty(w + 1, np.int64)
    unit = math.ldexp(1.0, k_unit)
    exact = True
    n = 0
    for y in range(h):
        prev = 0
        nc = 0
        for x in range(w):
            lev = min(np.int64(levels[y, x]), T)  # levels above the count are in every mask
            lrow[x] = lev
            chg[nc] = x
            nc += lev != prev
            prev = lev
        lrow[w] = 0
        chg[nc] = w
        nc += prev != 0
        if mode == _EXACT:
            s = np.int64(0)
            for x in range(w):
                pre[x] = s
                if lrow[x] > 0:
                    f = np.float64(values[y, x]) * unit
                    iv = np.int64(f)
                    exact &= np.float64(iv) == f
                    s += iv
            pre[w] = s
        for i in range(T):
            n_cur[i] = 0
            ptr[i] = 0
        prev = 0
        for c in range(nc):
            x = chg[c]
            lev = lrow[x]
            if mode == _MAX and prev > 0:  # the max of the stretch since the last change, into the open runs
                top = -np.inf
                for xx in range(chg[c - 1], x):
                    v = np.float64(values[y, xx])
                    if v > top:  # strictly: the first of equal values stays (0.0 and -0.0), as pixel by pixel
                        top = v
                for i in range(prev):
                    if top > acc_open[i]:
                        acc_open[i] = top
            elif mode != _EXACT and prev > 0:  # the pixels since the last change, into the open runs
                for xx in range(chg[c - 1], x):
                    v = np.float64(values[y, xx])
                    for i in range(prev):
                        if use_max:
                            if v > acc_open[i] or open_x[i] == xx:
                                acc_open[i] = v
                        else:
                            acc_open[i] += v
            if lev < prev:  # close the runs of levels lev .. prev - 1
                for i in range(lev, prev):
                    a = open_x[i]
                    if mode == _EXACT:
                        root = -1  # no component yet
                    else:
                        x0[n] = a
                        x1[n] = x
                        rrow[n] = y
                        rlev[n] = i
                        rval[n] = acc_open[i]
                        root = n
                    base = i * per_row
                    k = ptr[i]
                    m = n_prev[i]
                    while k < m:
                        px0 = prv_x0[base + k]
                        if px0 > x if conn8 else px0 >= x:
                            break  # this run and every later one of the row above lie past this run
                        px1 = prv_x1[base + k]
                        if a <= px1 if conn8 else a < px1:
                            rj = prv_id[base + k]
                            while parent[rj] != rj:
                                parent[rj] = parent[parent[rj]]
                                rj = parent[rj]
                            if mode == _EXACT:
                                if root < 0:
                                    root = rj
                                elif rj != root:  # two components meet: the younger joins the older
                                    old, young = (rj, root) if rj < root else (root, rj)
                                    parent[young] = old
                                    x0[old] = min(x0[old], x0[young])
                                    x1[old] = max(x1[old], x1[young])
                                    bottom[old] = max(bottom[old], bottom[young])
                                    rsum[old] += rsum[young]
                                    count[old] += count[young]
                                    root = old
                            elif rj < root:
                                if root != n:
                                    parent[root] = rj
                                root = rj
                            elif root < rj:
                                parent[rj] = root
                        if px1 <= x:
                            k += 1  # ends before the next run of this row can start
                        else:
                            break
                    if mode != _EXACT:
                        parent[n] = root
                        node = n
                        n += 1
                    elif root < 0:  # a new component, from this run
                        node = n
                        n += 1
                        parent[node] = node
                        x0[node] = a
                        x1[node] = x
                        rrow[node] = y
                        rlev[node] = i
                        seed[node] = a
                        rsum[node] = pre[x] - pre[a]
                        count[node] = x - a
                        bottom[node] = y + 1
                    else:  # this run into its component
                        node = root
                        x0[node] = min(x0[node], a)
                        x1[node] = max(x1[node], x)
                        rsum[node] += pre[x] - pre[a]
                        count[node] += x - a
                        bottom[node] = y + 1
                    ptr[i] = k
                    q = base + n_cur[i]
                    cur_x0[q] = a
                    cur_x1[q] = x
                    cur_id[q] = node
                    n_cur[i] += 1
            else:  # open the runs of levels prev .. lev - 1
                for i in range(prev, lev):
                    open_x[i] = x
                    acc_open[i] = -np.inf if use_max else 0.0
            prev = lev
        prv_x0, cur_x0 = cur_x0, prv_x0
        prv_x1, cur_x1 = cur_x1, prv_x1
        prv_id, cur_id = cur_id, prv_id
        n_prev, n_cur = n_cur, n_prev
    if not exact:
        return np.empty(0, np.int32), np.empty((0, 5), np.int32), np.empty(0, np.float64), False
    if mode != _EXACT:
        level, rect, score = _components(x0, x1, rrow, rlev, parent, rval, n, T, mode)
        return level, rect, score, True
    # the components, by level then raster order of their first run (the order nodes were made in, per level)
    first = np.zeros(T + 1, np.int64)
    for r in range(n):
        if parent[r] == r:
            first[rlev[r] + 1] += 1
    for i in range(T):
        first[i + 1] += first[i]
    o_level = np.empty(first[T], np.int32)
    o_rect = np.empty((first[T], 5), np.int32)
    o_score = np.empty(first[T], np.float64)
    per_unit = 1.0 / unit
    for r in range(n):
        if parent[r] == r:
            c = first[rlev[r]]
            first[rlev[r]] = c + 1
            o_level[c] = rlev[r]
            o_rect[c, 0] = x0[r]
            o_rect[c, 1] = rrow[r]
            o_rect[c, 2] = x1[r]
            o_rect[c, 3] = bottom[r]
            o_rect[c, 4] = seed[r]
            o_score[c] = np.float64(rsum[r]) * per_unit / np.float64(count[r])
    return o_level, o_rect, o_score, True


@njit(cache=True, nogil=True)
def _components(x0, x1, rrow, rlev, parent, rval, n, T, mode):  # pragma: no cover - compiled
    """Components from the labelled runs (modes other than ``_EXACT``), by level then raster order of their
    first run: box and score.

    A run's parent is an older run, so one pass in run order resolves every root; within a level, run order is
    raster order. Sums add the runs in raster order in float64, as the reference does."""
    n_by_level = np.zeros(T + 1, np.int64)
    for r in range(n):
        p = parent[r]
        if p != r:
            parent[r] = parent[p]  # p < r: its root is known already
        else:
            n_by_level[rlev[r] + 1] += 1
    for i in range(T):
        n_by_level[i + 1] += n_by_level[i]  # first slot of each level
    n_comp = n_by_level[T]
    slot = np.empty(n, np.int64)
    o_level = np.empty(n_comp, np.int32)
    o_rect = np.empty((n_comp, 5), np.int32)
    o_score = np.empty(n_comp, np.float64)
    count = np.zeros(n_comp, np.float64)
    for r in range(n):
        root = parent[r]
        if root == r:
            li = rlev[r]
            c = n_by_level[li]
            n_by_level[li] = c + 1
            o_level[c] = li
            o_rect[c, 0] = x0[r]
            o_rect[c, 1] = rrow[r]
            o_rect[c, 2] = x1[r]
            o_rect[c, 4] = x0[r]
            o_score[c] = -np.inf if mode == _MAX or mode == _MAX_PIXELS else 0.0
        else:
            c = slot[root]
            o_rect[c, 0] = min(o_rect[c, 0], x0[r])
            o_rect[c, 2] = max(o_rect[c, 2], x1[r])
        slot[r] = c
        o_rect[c, 3] = rrow[r] + 1
        if mode == _MAX or mode == _MAX_PIXELS:
            o_score[c] = max(o_score[c], rval[r])
        else:
            o_score[c] += rval[r]
        count[c] += x1[r] - x0[r]
    if mode == _SEQUENTIAL:
        for c in range(n_comp):
            o_score[c] /= count[c]
    return o_level, o_rect, o_score


@njit(cache=True, nogil=True)
def cap_keep(image, score, max_dets):  # pragma: no cover - compiled
    """bool ``[n]``: the boxes kept by a cap of ``max_dets`` (>= 1) per image (:mod:`surgery_core.eval.maxdets`),
    the boxes of each image adjacent and in their order, the scores NaN-free.

    Per image over the cap: the ``max_dets``-th highest score ``c`` by selection (``np.partition``), then every
    box above ``c`` and the earliest boxes equal to ``c`` up to the cap: the same boxes as a stable sort by
    descending score keeping the first ``max_dets``, in linear time.
    """
    n = image.shape[0]
    keep = np.ones(n, np.bool_)
    s = 0
    while s < n:
        e = s + 1
        while e < n and image[e] == image[s]:
            e += 1
        if e - s > max_dets:
            neg = np.empty(e - s, np.float64)
            for i in range(s, e):
                neg[i - s] = -score[i]
            c = -np.partition(neg, max_dets - 1)[max_dets - 1]
            ties = max_dets  # places left for boxes equal to c, once those above it are in
            for i in range(s, e):
                ties -= score[i] > c
            for i in range(s, e):
                v = score[i]
                if v > c:
                    continue
                if v == c and ties > 0:
                    ties -= 1
                else:
                    keep[i] = False
        s = e
    return keep
