"""The compiled cutter (eval/cutter.py) against an independent loop: OpenCV thresholding, morphology and
connected components at each threshold alone (``plain_loop_boxes``), on DIOR-sized maps of the benchmark's kind
and on shapes that stress the one-pass labelling (rings, nested plateaus, one-pixel rows and columns)."""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.eval import cutter
from surgery_core.eval.boxes import DEFAULT_SWEEP_PERCENTILES, BoxParams, close_open, cut, percentile_thresholds
from surgery_core.eval.maps import working_map
from tests.eval.test_boxes import plain_loop_boxes

RNG = np.random.default_rng(20261207)


def dior_like_grid(rng, grid: int = 25) -> np.ndarray:
    """A ViT-B/32-at-800-px grid as bench_sweep draws them: smooth noise plus Gaussian bumps on a few boxes."""
    g = rng.normal(0, 0.05, (grid, grid)).astype(np.float32)
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    for _ in range(rng.integers(1, 5)):
        cx, cy = rng.uniform(0, grid, 2)
        sx, sy = rng.uniform(0.5, 4, 2)
        g += 0.3 * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
    return g


def assert_equal_to_plain_loop(wmap, thresholds, params: BoxParams):
    h, w = wmap.shape
    got = cut(wmap, thresholds, w, h, params).per_threshold(len(thresholds))
    for t, (xyxy, score) in zip(thresholds, got):
        want = plain_loop_boxes(wmap, t, params.morph_kernel, params.connectivity, params.score)
        assert xyxy.tolist() == [b for b, _ in want]
        assert score.tolist() == [s for _, s in want]  # bit for bit


@pytest.mark.parametrize("connectivity,score", [(8, "mean"), (4, "max")])
def test_dior_sized_maps_at_the_sweep_percentiles(connectivity, score):
    # 224 x 224 working maps of 25 x 25 grids at the ten sweep percentiles, the benchmark's case
    params = BoxParams(morph_kernel=3, connectivity=connectivity, score=score, box_resolution=None)
    for _ in range(3):
        wmap = working_map(dior_like_grid(RNG), 224, 224, None)
        ths = percentile_thresholds(wmap, DEFAULT_SWEEP_PERCENTILES)
        assert_equal_to_plain_loop(wmap, ths, params)


def test_rings_nested_plateaus_and_thin_maps():
    params = BoxParams(morph_kernel=1, box_resolution=None)
    yy, xx = np.mgrid[0:41, 0:41]
    r = np.hypot(yy - 20, xx - 20)
    rings = (np.round(r) % 6 < 3).astype(np.float32) * (1 + (r < 12)) / 2  # rings, the inner ones higher
    assert_equal_to_plain_loop(rings, np.float32([0.25, 0.5, 0.75, 1.0]), params)
    steps = np.kron(RNG.integers(0, 6, (9, 9)), np.ones((3, 3))).astype(np.float32) / 5  # plateaus at every level
    for conn in (4, 8):
        assert_equal_to_plain_loop(steps, np.float32([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]),
                                   params.model_copy(update={"connectivity": conn}))
    for shape in ((1, 37), (37, 1), (1, 1)):
        thin = RNG.random(shape).astype(np.float32)
        assert_equal_to_plain_loop(thin, np.sort(RNG.random(5)).astype(np.float32), params)


def test_levels_above_the_count_are_in_every_mask():
    # a level map may hold levels above n_levels (a group of thresholds cut alone): they count as the top level
    levels = np.array([[0, 3, 3, 0, 1]], np.uint8)
    values = np.ones((1, 5), np.float32)
    level, rect, _ = cutter.cut_levels(levels, values, 2, True, False)
    assert level.tolist() == [0, 0, 1] and rect[:, 0].tolist() == [1, 4, 1]
    # morphology of the level map equals morphology of each mask (threshold decomposition)
    lv = cutter.level_map(working_map(dior_like_grid(RNG), 64, 64, None), np.float32([0.3, 0.5, 0.7]))
    for i in range(3):
        np.testing.assert_array_equal(close_open(lv, 5) > i, close_open((lv > i).astype(np.uint8), 5) > 0)


# ------------------------------------------------------------------ exact integer sums and their fallback

def all_params():
    for conn in (8, 4):
        for score in ("mean", "max"):
            for kernel in (1, 3):
                yield BoxParams(morph_kernel=kernel, connectivity=conn, score=score, box_resolution=None)


def test_smooth_flat_tied_tiny_and_large_maps_equal_the_plain_loop():
    # The labelling from level changes (integer prefix sums for means) against OpenCV at each threshold alone:
    # smooth maps, a flat map, an all-zero map, plateaus (ties with the thresholds), one-pixel and 800 px maps.
    maps = {
        "smooth": working_map(dior_like_grid(RNG), 97, 61, None),
        "flat": np.full((23, 31), 0.375, np.float32),
        "zeros": np.zeros((17, 19), np.float32),
        "plateaus": np.kron(RNG.integers(0, 4, (7, 9)), np.ones((4, 3))).astype(np.float32) / 3,
        "pixel": np.float32([[0.5]]),
        "row": RNG.random((1, 57)).astype(np.float32),
        "column": RNG.random((57, 1)).astype(np.float32),
        "negative": working_map(dior_like_grid(RNG), 40, 40, None) - np.float32(0.5),
    }
    for name, wmap in maps.items():
        ths = np.unique(np.concatenate([percentile_thresholds(wmap, DEFAULT_SWEEP_PERCENTILES),
                                        RNG.choice(wmap.ravel(), 3)])).astype(np.float32)
        for params in all_params():
            assert_equal_to_plain_loop(wmap, ths, params)
    # signed zeros: a max keeps the first of equal values, pixel by pixel as by stretches of one level
    zeros = np.where(RNG.random((30, 30)) < 0.5, np.float32(-0.0), np.float32(0.0))
    zeros[10:20, 5:25] += working_map(dior_like_grid(RNG), 20, 10, None)
    for conn in (4, 8):
        params = BoxParams(morph_kernel=1, connectivity=conn, score="max", box_resolution=None)
        ths = np.float32([-1.0, 0.0, 0.5])
        got = cut(zeros, ths, 30, 30, params).per_threshold(3)
        for t, (_, score) in zip(ths, got):
            want = [sc for _, sc in plain_loop_boxes(zeros, t, 1, conn, "max")]
            assert score.tolist() == want and np.signbit(score).tolist() == np.signbit(want).tolist()
    big = working_map(dior_like_grid(RNG), 800, 800, None)  # DIOR's own image size
    assert_equal_to_plain_loop(big, percentile_thresholds(big, (50.0, 90.0)), BoxParams(box_resolution=None))


def test_maps_without_exact_integer_sums_fall_back_to_float_sums():
    # A value far smaller than the map's largest is not a whole number of the units that keep every sum below
    # 2**52: those maps are summed pixel by pixel in float64 (the reference order), with the same result.
    wmap = working_map(dior_like_grid(RNG), 64, 64, None)
    wmap[10:20, 10:20] = np.float32(1e-30) + wmap[10:20, 10:20] * np.float32(1e-28)  # tiny, inside a component
    wmap[30:40, 30:40] = 1.0
    ths = np.float32([0.0, 1e-31, 0.3, 0.9])
    levels = cutter.level_map(wmap, ths)
    k = cutter._sum_unit(wmap)
    assert not cutter._run_label(levels, wmap, len(ths), True, cutter._EXACT, k)[3]  # the fallback is taken
    for params in all_params():
        assert_equal_to_plain_loop(wmap, ths, params)
    # and a map whose sums fit whole units takes the integer sums, with the same result as the float sums
    smooth = working_map(dior_like_grid(RNG), 224, 224, None)
    ths = percentile_thresholds(smooth, DEFAULT_SWEEP_PERCENTILES)
    levels = close_open(cutter.level_map(smooth, np.sort(ths)), 3)
    fast = cutter._run_label(levels, smooth, len(ths), True, cutter._EXACT, cutter._sum_unit(smooth))
    slow = cutter._run_label(levels, smooth, len(ths), True, cutter._SEQUENTIAL, 0)
    assert fast[3] and len(fast[0]) > 10
    for a, b in zip(fast[:3], slow[:3]):
        np.testing.assert_array_equal(a, b)
    # a max by stretches of one level (finite maps) equals the max pixel by pixel (any map)
    by_stretch = cutter._run_label(levels, smooth, len(ths), False, cutter._MAX, 0)
    by_pixel = cutter._run_label(levels, smooth, len(ths), False, cutter._MAX_PIXELS, 0)
    for a, b in zip(by_stretch[:3], by_pixel[:3]):
        np.testing.assert_array_equal(a, b)


def test_maps_with_an_infinity_cut_like_before():
    # No exact unit exists: float sums; percentiles fall back to numpy's selection (maps are NaN-free by
    # contract: np.percentile's NaN propagation is not replayed)
    wmap = working_map(dior_like_grid(RNG), 128, 128, None)
    wmap[5, 5] = np.inf
    assert cutter._sum_unit(wmap) == cutter._NO_UNIT
    ths = np.float32([0.2, 0.6])
    assert_equal_to_plain_loop(wmap, ths, BoxParams(morph_kernel=1, box_resolution=None))
    for bad in (np.inf, -np.inf):
        m = working_map(dior_like_grid(RNG), 128, 128, None)
        m[3, 7] = bad
        with np.errstate(invalid="ignore"):
            want = np.array([np.percentile(m, p) for p in (10.0, 50.0, 90.0)], np.float32)
        np.testing.assert_array_equal(percentile_thresholds(m, (10.0, 50.0, 90.0)), want)


def test_reused_node_buffers_across_sizes_modes_and_threads():
    # The labelling's node buffers are kept per thread and reused: maps of growing and shrinking sizes, every
    # scoring mode, results kept from earlier calls, and two threads at once must all give what each map gives
    # alone in a fresh buffer (and earlier results must not change when the buffers are written again).
    import threading

    def fresh(levels, values, n, conn8, mode, k):
        h, w = levels.shape
        cap = n * (h * ((w + 1) // 2) + 1)
        return cutter._label(levels, values, n, conn8, mode, k, np.empty((9, cap), np.int64), np.empty(cap))

    cases = []
    for side in (224, 31, 800, 1, 96):
        wmap = working_map(dior_like_grid(RNG), side, side, None)
        ths = np.sort(percentile_thresholds(wmap, DEFAULT_SWEEP_PERCENTILES))
        levels = close_open(cutter.level_map(wmap, ths), 3)
        for mode, k in ((cutter._EXACT, cutter._sum_unit(wmap)), (cutter._SEQUENTIAL, 0), (cutter._MAX, 0)):
            cases.append((levels, wmap, len(ths), side % 2 == 0, mode, k))
    want = [fresh(*c) for c in cases]
    kept = [cutter._run_label(*c) for c in cases]
    again = [cutter._run_label(*c) for c in reversed(cases)][::-1]
    threaded: dict[int, list] = {}

    def work(t):
        threaded[t] = [cutter._run_label(*c) for c in (cases if t else cases[::-1])]

    threads = [threading.Thread(target=work, args=(t,)) for t in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got_all in (kept, again, threaded[1], threaded[0][::-1]):
        for w_, g in zip(want, got_all):
            assert w_[3] == g[3]
            for a, b in zip(w_[:3], g[:3]):
                np.testing.assert_array_equal(a, b)
    assert sum(len(w_[0]) for w_ in want) > 1000  # real work: components at every level
