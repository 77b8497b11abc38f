"""Maps and boxes: exact boxes on hand-built grids, numpy/OpenCV/torch reference semantics, batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from surgery_core.eval.boxes import (
    BoxParams,
    boxes_from_grid,
    close_open,
    cut,
    cut_thresholds,
    find_components,
    percentile_thresholds,
)
from surgery_core.eval.cutting import cell_detections, detections_at
from surgery_core.eval.protocols import OPEN, PRESENT, Cell
from surgery_core.eval.maps import box_mask, image_scale, normalize, upsample, working_map

RNG = np.random.default_rng(20251029)


def reference_boxes(grid, image_w, image_h, params: BoxParams, class_prob=1.0):
    """The seed's recipe written plainly with OpenCV/numpy/torchvision calls, as the oracle."""
    from torchvision.ops import nms

    br = params.box_resolution
    ww, wh = (image_w, image_h) if br is None else (br, br)
    g = np.asarray(grid, np.float64)
    span = g.max() - g.min()
    g = (g - g.min()) / span if span > 0 else np.zeros_like(g)
    wmap = cv2.resize(g.astype(np.float32), (ww, wh), interpolation=cv2.INTER_LINEAR)
    mask = (wmap >= np.percentile(wmap, float(params.percentile))).astype(np.uint8)
    if params.morph_kernel > 1:
        kern = cv2.getStructuringElement(cv2.MORPH_RECT, (params.morph_kernel, params.morph_kernel))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kern)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kern)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=params.connectivity)
    sx, sy = image_w / ww, image_h / wh
    boxes, scores = [], []
    for k in range(1, n):
        x, y, w, h, _ = stats[k]
        box = [x * sx, y * sy, (x + w) * sx, (y + h) * sy]
        if (box[2] - box[0]) * (box[3] - box[1]) < params.min_area:
            continue
        vals = wmap[labels == k].astype(np.float64)
        score = vals.mean() if params.score == "mean" else vals.max()
        boxes.append(box)
        scores.append(score * (class_prob if params.class_prob_weight else 1.0))
    xyxy, score = np.array(boxes, np.float64).reshape(-1, 4), np.array(scores, np.float64)
    if params.nms_iou is not None and len(score) > 1:
        keep = np.sort(nms(torch.from_numpy(xyxy), torch.from_numpy(score), params.nms_iou).numpy())
        xyxy, score = xyxy[keep], score[keep]
    return xyxy, score


def assert_same_boxes(got, want):
    """Same boxes and scores; the reference lists them in OpenCV's label order, so compare sorted by box."""
    def by_box(xyxy, score):
        order = np.lexsort(xyxy.T[::-1])
        return xyxy[order], score[order]
    got, want = by_box(*got), by_box(*want)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------ maps

def test_normalize_is_min_max_per_class_and_constant_grid_gives_zeros():
    grid = np.stack([np.full((7, 7), 0.18, np.float32),
                     np.arange(49, dtype=np.float32).reshape(7, 7) * 0.01 - 0.2,
                     np.full((7, 7), np.nan, np.float32)])
    out = normalize(grid)
    assert out.dtype == np.float32 and out.shape == grid.shape
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[2], 0.0)
    np.testing.assert_allclose(out[1], np.arange(49).reshape(7, 7) / 48, atol=1e-7)
    assert out[1].min() == 0.0 and out[1].max() == 1.0


@pytest.mark.parametrize("shape_in,size_out", [((7, 7), (224, 224)), ((7, 7), (800, 600)), ((16, 16), (336, 336)),
                                                ((7, 5), (13, 9)), ((24, 24), (7, 7))])
def test_upsample_equals_torch_bilinear_align_corners_false(shape_in, size_out):
    grid = RNG.normal(0.2, 0.05, shape_in).astype(np.float32)
    w, h = size_out
    want = torch.nn.functional.interpolate(torch.from_numpy(grid)[None, None], size=(h, w), mode="bilinear",
                                           align_corners=False).numpy()[0, 0]
    got = upsample(grid, w, h)
    assert got.shape == (h, w)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_upsample_stack_equals_per_class():
    grid = RNG.random((20, 7, 7)).astype(np.float32)
    stack = upsample(grid, 224, 224)
    for c in (0, 7, 19):
        np.testing.assert_array_equal(stack[c], upsample(grid[c], 224, 224))


def test_box_mask_uses_pixel_centres_and_keeps_tiny_boxes():
    # 800 px image at 224: working pixel j covers [j * 800/224, (j+1) * 800/224).
    s = 800 / 224
    m = box_mask([[0.0, 0.0, 2.5 * s, 1.5 * s]], 800, 800)  # centres 0.5s,1.5s in x; 0.5s in y
    assert m.sum() == 2 and m[0, 0] and m[0, 1]
    tiny = box_mask([[10.0 * s + 0.1, 3.0 * s + 0.1, 10.0 * s + 0.2, 3.0 * s + 0.2]], 800, 800)
    assert tiny.sum() == 1 and tiny[3, 10]


# ---------------------------------------------------------------------------------------------- params

def test_box_params_defaults_validation_and_frozen():
    p = BoxParams()
    assert (p.percentile, p.morph_kernel, p.connectivity, p.score, p.box_resolution) == (90.0, 3, 8, "mean", 224)
    assert p.nms_iou is None and p.min_area == 0 and p.class_prob_weight is False
    for bad in ({"morph_kernel": 4}, {"percentile": 101}, {"connectivity": 6}, {"score": "sum"},
                {"nms_iou": 1.5}, {"box_resolution": 0}, {"min_area": -1}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            BoxParams(**bad)
    with pytest.raises(ValidationError):
        p.percentile = 75
    assert BoxParams.model_validate(p.model_dump()) == p


# ---------------------------------------------------------------------------------------- percentiles

def test_percentile_thresholds_equal_numpy_bit_for_bit():
    for trial in range(60):
        size = [224, 800, 97, 13][trial % 4]
        grid = RNG.random((7, 7)).astype(np.float32)
        if trial % 3 == 0:
            grid = np.round(grid * 3) / 3  # plateaus: many tied values
        wmap = working_map(grid, size, size, None)
        ps = [0.0, 100.0, 50.0, 75.0, 90.0, 99.9, 33.3] + [float(p) for p in RNG.uniform(0, 100, 5)]
        got = percentile_thresholds(wmap, ps)
        want = np.array([np.percentile(wmap, p) for p in ps])
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_compiled_selection_equals_numpy_on_large_maps_with_many_ties():
    """Maps large enough for the compiled histogram selection (``cutter.percentile_values``), half of them with
    one bucket holding 20,000 equal values: every percentile equals ``np.percentile`` bit for bit."""
    for trial in range(40):
        wmap = upsample(RNG.random((7, 7)).astype(np.float32), 300, 300)
        if trial % 2:
            wmap.ravel()[: 20000] = 0.25  # one bucket holding many ties
        ps = [float(p) for p in RNG.uniform(0, 100, 25)] + [0.0, 100.0]
        got = percentile_thresholds(wmap, ps)
        np.testing.assert_array_equal(got, np.array([np.percentile(wmap, p) for p in ps], np.float32))


def test_threshold_keeps_pixels_equal_to_the_percentile():
    # box_resolution=None on a 10x1 image: the working map is the normalised grid itself (k / 9).
    grid = np.arange(10, dtype=np.float32)[None, :]
    def box(p):
        xyxy, _ = boxes_from_grid(grid, 10, 1, BoxParams(percentile=p, morph_kernel=1, box_resolution=None))
        return xyxy.tolist()
    assert box(50) == [[5.0, 0.0, 10.0, 1.0]]    # virtual index 4.5 -> threshold 4.5/9: pixels 5..9
    assert box(40) == [[4.0, 0.0, 10.0, 1.0]]    # index 3.6 -> pixels 4..9
    assert box(100) == [[9.0, 0.0, 10.0, 1.0]]   # the maximum itself is kept (>=)
    assert box(0) == [[0.0, 0.0, 10.0, 1.0]]
    assert box(float(100 * 5 / 9)) == [[5.0, 0.0, 10.0, 1.0]]  # threshold lands exactly on pixel 5's value


# ------------------------------------------------------------------------------------------ exact boxes

def hot_grid():
    grid = np.zeros((7, 7), np.float32)
    grid[2:4, 3:6] = 1.0  # rows 2-3, columns 3-5
    return grid


def test_hot_region_gives_exact_box_at_grid_resolution_scaled_to_800():
    # box_resolution=7: the working map is the grid; each cell covers 800/7 original pixels.
    xyxy, score = boxes_from_grid(hot_grid(), 800, 800, BoxParams(percentile=90, morph_kernel=1, box_resolution=7))
    c = 800 / 7
    np.testing.assert_allclose(xyxy, [[3 * c, 2 * c, 6 * c, 4 * c]], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(score, [1.0])


def test_hot_region_at_224_scales_component_extent_to_800():
    params = BoxParams(percentile=90, morph_kernel=1)
    wmap = working_map(hot_grid(), 800, 800, 224)
    fg = wmap >= np.percentile(wmap, 90.0)
    rows, cols = np.nonzero(fg)
    s = 800 / 224
    want = [cols.min() * s, rows.min() * s, (cols.max() + 1) * s, (rows.max() + 1) * s]
    xyxy, score = boxes_from_grid(hot_grid(), 800, 800, params)
    np.testing.assert_allclose(xyxy, [want], rtol=0, atol=1e-9)
    # The hot cells' centres sit at 32 * (3.5, 2.5) .. 32 * (5.5, 3.5) working px: the box must cover them.
    assert xyxy[0, 0] <= 3.5 * 32 * s and xyxy[0, 2] >= 5.5 * 32 * s
    assert xyxy[0, 1] <= 2.5 * 32 * s and xyxy[0, 3] >= 3.5 * 32 * s
    np.testing.assert_allclose(score, [wmap[fg].mean()], rtol=1e-6)


def test_non_square_image_scales_each_axis():
    xyxy, _ = boxes_from_grid(hot_grid(), 700, 350, BoxParams(percentile=90, morph_kernel=1, box_resolution=7))
    np.testing.assert_allclose(xyxy, [[300.0, 100.0, 600.0, 200.0]], atol=1e-9)
    assert image_scale(700, 350, 7) == (100.0, 50.0)
    assert image_scale(700, 350, None) == (1.0, 1.0)


def speck_grid():
    grid = np.zeros((20, 20), np.float32)
    grid[3:9, 4:10] = 1.0  # 6x6 block
    grid[15, 16] = 1.0     # one-pixel speck
    return grid


def test_morphology_removes_a_single_pixel_speck():
    base = dict(percentile=95, box_resolution=None)
    xyxy_off, _ = boxes_from_grid(speck_grid(), 20, 20, BoxParams(morph_kernel=1, **base))
    assert xyxy_off.tolist() == [[4.0, 3.0, 10.0, 9.0], [16.0, 15.0, 17.0, 16.0]]
    xyxy_on, score = boxes_from_grid(speck_grid(), 20, 20, BoxParams(morph_kernel=3, **base))
    assert xyxy_on.tolist() == [[4.0, 3.0, 10.0, 9.0]]
    assert score.tolist() == [1.0]


def test_close_fills_a_one_pixel_gap():
    grid = np.zeros((20, 20), np.float32)
    grid[5:10, 3:8] = 1.0
    grid[5:10, 9:14] = 1.0  # column 8 is a one-pixel gap
    base = dict(percentile=90, box_resolution=None)  # 50 hot of 400 px: threshold 1
    assert len(boxes_from_grid(grid, 20, 20, BoxParams(morph_kernel=1, **base))[0]) == 2
    assert boxes_from_grid(grid, 20, 20, BoxParams(morph_kernel=3, **base))[0].tolist() == [[3.0, 5.0, 14.0, 10.0]]


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_close_open_equals_opencv_morphology(kernel):
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))
    for _ in range(30):
        h, w = RNG.integers(3, 60, 2)
        mask = (RNG.random((h, w)) < RNG.uniform(0.2, 0.8)).astype(np.uint8)
        want = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kern), cv2.MORPH_OPEN, kern)
        np.testing.assert_array_equal(close_open(mask, kernel), want)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_find_components_equals_opencv_stats(connectivity):
    for _ in range(200):
        h, w = RNG.integers(2, 50, 2)
        mask = (RNG.random((h, w)) < RNG.uniform(0.1, 0.9)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
        rects, seeds = find_components(mask, connectivity)
        ids = labels[seeds[:, 1], seeds[:, 0]]
        assert sorted(ids.tolist()) == list(range(1, n))
        np.testing.assert_array_equal(rects, stats[ids, :4])
        # seeds are each component's first pixel in raster order, and components come in that order
        first = [int(np.flatnonzero(labels.ravel() == k)[0]) for k in ids]
        np.testing.assert_array_equal(seeds[:, 1] * w + seeds[:, 0], first)
        assert first == sorted(first)


def ring_and_island():
    """11x11 grid: a ring (value 1) around a hole holding an island (value 0.8); background 0."""
    grid = np.zeros((11, 11), np.float32)
    grid[1:10, 1:10] = 1.0
    grid[2:9, 2:9] = 0.0
    grid[4:7, 4:7] = 0.8
    return grid


def test_island_inside_a_hole_is_its_own_box_and_score():
    # percentile 70 of 121 px (80 zeros, 9 x 0.8, 32 x 1) is 0.8: ring and island, nothing else.
    params = BoxParams(percentile=70, morph_kernel=1, box_resolution=11)
    xyxy, score = boxes_from_grid(ring_and_island(), 110, 110, params)
    assert xyxy.tolist() == [[10.0, 10.0, 100.0, 100.0], [40.0, 40.0, 70.0, 70.0]]
    np.testing.assert_allclose(score, [1.0, 0.8], rtol=1e-6)  # ring's score excludes the island's pixels
    assert_same_boxes((xyxy, score), reference_boxes(ring_and_island(), 110, 110, params))


def test_nms_suppresses_the_weaker_overlapping_box():
    # ring box 90x90, island 30x30 inside: IoU = 900 / 8100 = 0.111
    base = dict(percentile=70, morph_kernel=1, box_resolution=11)
    assert len(boxes_from_grid(ring_and_island(), 110, 110, BoxParams(nms_iou=0.2, **base))[0]) == 2
    xyxy, score = boxes_from_grid(ring_and_island(), 110, 110, BoxParams(nms_iou=0.1, **base))
    assert xyxy.tolist() == [[10.0, 10.0, 100.0, 100.0]]
    np.testing.assert_allclose(score, [1.0], rtol=1e-6)


def test_min_area_is_in_original_pixels_and_inclusive():
    base = dict(percentile=70, morph_kernel=1, box_resolution=11)
    assert len(boxes_from_grid(ring_and_island(), 110, 110, BoxParams(min_area=900, **base))[0]) == 2
    xyxy, score = boxes_from_grid(ring_and_island(), 110, 110, BoxParams(min_area=901, **base))
    assert xyxy.tolist() == [[10.0, 10.0, 100.0, 100.0]]
    np.testing.assert_allclose(score, [1.0], rtol=1e-6)  # the dropped island still stays out of the ring
    assert len(boxes_from_grid(ring_and_island(), 110, 110, BoxParams(min_area=8101, **base))[0]) == 0


def test_score_rules_and_class_probability():
    grid = np.zeros((5, 5), np.float32)
    grid[1, 1:4] = [0.5, 1.0, 0.75]
    base = dict(percentile=90, morph_kernel=1, box_resolution=None)  # threshold 0.3: the three hot cells
    _, mean = boxes_from_grid(grid, 5, 5, BoxParams(**base))
    _, mx = boxes_from_grid(grid, 5, 5, BoxParams(score="max", **base))
    _, weighted = boxes_from_grid(grid, 5, 5, BoxParams(class_prob_weight=True, **base), class_prob=0.25)
    _, ignored = boxes_from_grid(grid, 5, 5, BoxParams(**base), class_prob=0.25)
    np.testing.assert_allclose(mean, [0.75])
    np.testing.assert_allclose(mx, [1.0])
    np.testing.assert_allclose(weighted, [0.1875])
    np.testing.assert_allclose(ignored, [0.75])


def test_no_boxes_is_empty_arrays():
    xyxy, score = boxes_from_grid(np.zeros((7, 7), np.float32), 800, 800, BoxParams(percentile=90))
    # A constant map is all at the threshold: one box over the whole image.
    assert xyxy.tolist() == [[0.0, 0.0, 800.0, 800.0]]
    speck = np.zeros((20, 20), np.float32)
    speck[10, 10] = 1.0
    xyxy, score = boxes_from_grid(speck, 20, 20, BoxParams(percentile=100, morph_kernel=3, box_resolution=None))
    assert xyxy.shape == (0, 4) and score.shape == (0,)


# ------------------------------------------------------------------------------ against the reference

PARAM_CASES = [
    BoxParams(),
    BoxParams(percentile=75),
    BoxParams(percentile=60, morph_kernel=1, connectivity=4),
    BoxParams(percentile=85, morph_kernel=5, score="max"),
    BoxParams(percentile=50, min_area=20000, nms_iou=0.3),
    BoxParams(percentile=80, class_prob_weight=True, box_resolution=37),
    BoxParams(percentile=92.5, morph_kernel=3, box_resolution=None),
]


@pytest.mark.parametrize("params", PARAM_CASES, ids=range(len(PARAM_CASES)))
def test_boxes_equal_the_plain_reference(params):
    for trial in range(12):
        grid = RNG.normal(0.18, 0.02, (7, 7)).astype(np.float32)
        if trial % 4 == 0:
            grid = np.round(grid * 100) / 100  # ties
        w, h = (800, 800) if trial % 3 else (512, 384)
        prob = float(RNG.random())
        assert_same_boxes(boxes_from_grid(grid, w, h, params, prob), reference_boxes(grid, w, h, params, prob))


def test_sweep_equals_one_call_per_percentile():
    params = BoxParams(morph_kernel=3)
    ps = [50.0, 60.0, 75.0, 90.0, 95.0, 99.0]
    for _ in range(10):
        grid = RNG.random((7, 7)).astype(np.float32)
        wmap = working_map(grid, 800, 800, params.box_resolution)
        sweep = cut(wmap, cut_thresholds(wmap, ps), 800, 800, params).per_threshold(len(ps))
        for p, got in zip(ps, sweep):
            assert_same_boxes(got, boxes_from_grid(grid, 800, 800, params.model_copy(update={"percentile": p})))


def test_strip_tiles_do_not_interact_through_the_gap():
    # A map that is hot along its bottom and top edges: close/open must not join tiles across the gap.
    wmap = np.zeros((30, 30), np.float32)
    wmap[:3] = 1.0
    wmap[-3:] = 1.0
    params = BoxParams(morph_kernel=5, box_resolution=None)
    out = cut(wmap, [0.5, 0.5, 0.5], 30, 30, params).per_threshold(3)
    for xyxy, _ in out:
        assert xyxy.tolist() == [[0.0, 0.0, 30.0, 3.0], [0.0, 27.0, 30.0, 30.0]]


# ------------------------------------------------------------- every threshold in one pass (eval/cutter.py)

def plain_loop_boxes(wmap, t, kernel, connectivity, score):
    """One threshold alone, written plainly: mask, OpenCV close/open, OpenCV labels; a component's mean is
    its runs' sums (each summed left to right in float64) added in raster order, over its pixel count."""
    mask = (wmap >= t).astype(np.uint8)
    if kernel > 1:
        kern = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kern), cv2.MORPH_OPEN, kern)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
    firsts = {}
    for k in range(1, n):
        firsts[k] = int(np.flatnonzero(labels.ravel() == k)[0])
    out = []
    for k in sorted(firsts, key=firsts.get):  # raster order of first pixels
        x, y, w, h, area = stats[k]
        acc, best = 0.0, -np.inf
        for row in range(y, y + h):
            inside = labels[row] == k
            col = 0
            while col < labels.shape[1]:
                if inside[col]:
                    run = 0.0
                    while col < labels.shape[1] and inside[col]:
                        run += float(wmap[row, col])
                        best = max(best, float(wmap[row, col]))
                        col += 1
                    acc += run
                else:
                    col += 1
        out.append(([float(x), float(y), float(x + w), float(y + h)], best if score == "max" else acc / area))
    return out


@pytest.mark.parametrize("kernel,connectivity,score", [(1, 8, "mean"), (3, 8, "mean"), (3, 4, "max"),
                                                        (5, 4, "mean"), (7, 8, "max")])
def test_all_thresholds_at_once_equal_each_threshold_alone(kernel, connectivity, score):
    # Level map, one morphology for every threshold, nested scans: box for box and bit for bit what each
    # threshold gives alone; thresholds unsorted and repeated, ties in the map.
    params = BoxParams(morph_kernel=kernel, connectivity=connectivity, score=score, box_resolution=None)
    for trial in range(6):
        h, w = RNG.integers(20, 70, 2)
        wmap = upsample(RNG.random((6, 7)).astype(np.float32), int(w), int(h))
        if trial % 2:
            wmap = np.round(wmap * 8) / 8  # plateaus: many pixels equal to a threshold
        ths = np.concatenate([RNG.choice(wmap.ravel(), 5), [0.0, 1.01, -1.0]]).astype(np.float32)
        ths = np.concatenate([ths, ths[:2]])
        got = cut(wmap, ths, int(w), int(h), params).per_threshold(len(ths))
        for t, (xyxy, sc) in zip(ths, got):
            want = plain_loop_boxes(wmap, t, kernel, connectivity, score)
            assert xyxy.tolist() == [b for b, _ in want]
            assert sc.tolist() == [s for _, s in want]  # exactly, not approximately


def test_more_thresholds_than_one_level_map_holds():
    wmap = upsample(RNG.random((5, 5)).astype(np.float32), 24, 24)
    ths = np.sort(RNG.random(300).astype(np.float32))  # 255 per uint8 level map: two groups
    params = BoxParams(morph_kernel=3, box_resolution=None)
    got = cut(wmap, ths, 24, 24, params).per_threshold(len(ths))
    for i in (0, 254, 255, 299):
        want = plain_loop_boxes(wmap, ths[i], 3, 8, "mean")
        assert got[i][0].tolist() == [b for b, _ in want] and got[i][1].tolist() == [s for _, s in want]


# ------------------------------------------------------------------------------------------- batched

def batch(n_img=6, n_cls=4):
    grids = RNG.normal(0.2, 0.03, (n_img, n_cls, 7, 7)).astype(np.float32)
    sizes = np.array([[800, 800]] * (n_img - 1) + [[640, 480]])
    return grids, sizes


def test_detections_at_matches_per_pair_calls():
    grids, sizes = batch()
    params = BoxParams(class_prob_weight=True)
    probs = RNG.random((6, 4))
    pair_image, pair_class = np.array([3, 0, 0, 5]), np.array([1, 2, 0, 3])
    ids = np.array([10, 11, 12, 13, 14, 15])
    out = detections_at(grids, sizes, params, [75, 90], pair_image=pair_image, pair_class=pair_class,
                           class_probs=probs, image_ids=ids)
    assert sorted(out) == [75.0, 90.0]
    for p, det in out.items():
        want_img, want_cls, want_xyxy, want_score = [], [], [], []
        for r, c in sorted(zip(pair_image.tolist(), pair_class.tolist()), key=lambda rc: rc[0]):
            w, h = sizes[r]
            xyxy, score = boxes_from_grid(grids[r, c], w, h, params.model_copy(update={"percentile": p}),
                                          probs[r, c])
            want_img += [ids[r]] * len(score)
            want_cls += [c] * len(score)
            want_xyxy.append(xyxy)
            want_score.append(score)
        np.testing.assert_array_equal(det.image, want_img)
        np.testing.assert_array_equal(det.class_id, want_cls)
        np.testing.assert_array_equal(det.xyxy, np.concatenate(want_xyxy))
        np.testing.assert_array_equal(det.score, np.concatenate(want_score))


@pytest.mark.parametrize("update", [dict(min_area=2500.0, class_prob_weight=True), dict(box_resolution=None),
                                    dict(min_area=900.0, nms_iou=0.3, class_prob_weight=True),
                                    dict(score="max", connectivity=4, min_area=100.0)])
def test_a_chunk_placed_at_once_equals_each_map_cut_alone(update):
    # A chunk's components become boxes in one vectorised step (NMS off) or map by map (NMS on): the same boxes,
    # scores and order as cut() of each map, whatever the image sizes, the minimum area or the box resolution.
    grids, sizes = batch(5, 3)
    sizes[1], sizes[3] = (333, 517), (96, 1200)
    params = BoxParams(**update)
    probs = RNG.random((5, 3))
    ps = [50.0, 75.0, 90.0]
    got = detections_at(grids, sizes, params, ps, class_probs=probs, chunk_pairs=4)
    for i, p in enumerate(ps):
        want_xyxy, want_score, want_cls, want_img = [], [], [], []
        for r in range(5):
            for c in range(3):
                w, h = (int(v) for v in sizes[r])
                wmap = working_map(grids[r, c], w, h, params.box_resolution)
                xyxy, score = cut(wmap, cut_thresholds(wmap, ps), w, h, params, probs[r, c]).at(i)
                want_xyxy.append(xyxy)
                want_score.append(score)
                want_cls += [c] * len(score)
                want_img += [r] * len(score)
        np.testing.assert_array_equal(got[p].xyxy, np.concatenate(want_xyxy).reshape(-1, 4))
        np.testing.assert_array_equal(got[p].score, np.concatenate(want_score))
        np.testing.assert_array_equal(got[p].class_id, want_cls)
        np.testing.assert_array_equal(got[p].image, want_img)


@pytest.mark.parametrize("weighted,cap,workers", [(False, 0, 1), (False, 3, 2), (True, 2, 1), (True, 0, 1)])
def test_both_protocols_from_one_cut_equal_two_calls(weighted, cap, workers):
    # The open and present protocols of one method: the present pairs are cut once, with the open ones.
    grids, sizes = batch(7, 5)
    probs = RNG.random((7, 5))
    probs[2, 1] = 0.0  # a zero probability: every weighted score of that pair is 0
    params = BoxParams(class_prob_weight=weighted, morph_kernel=3)
    pi = np.array([0, 0, 2, 2, 3, 6, 6, 6])
    pc = np.array([1, 4, 0, 1, 2, 0, 3, 4])
    ps = [50, 75, 90]
    ticks = []
    got = cell_detections(grids, sizes, params, "m", ["present", "open"], ps, (pi, pc), class_probs=probs,
                          image_ids=np.arange(7) + 100, workers=workers, max_dets=cap, progress=ticks.append)
    want_open = detections_at(grids, sizes, OPEN.box_params(params), ps, class_probs=probs,
                              image_ids=np.arange(7) + 100, max_dets=cap)
    want_present = detections_at(grids, sizes, PRESENT.box_params(params), ps, pair_image=pi, pair_class=pc,
                                 class_probs=probs, image_ids=np.arange(7) + 100, max_dets=cap)
    assert sorted(got, key=Cell.sort_key) == [Cell.of("m", pr, p) for pr in ("present", "open") for p in ps]
    for proto, want in ((OPEN, want_open), (PRESENT, want_present)):
        for p in ps:
            for f in ("xyxy", "score", "class_id", "image"):
                np.testing.assert_array_equal(getattr(got[Cell("m", proto, float(p))], f), getattr(want[p], f))
    assert sum(ticks) == 7 * 5 + len(pi)
    # under NMS each protocol is cut alone, with the same result as cutting it alone
    nms = params.model_copy(update={"nms_iou": 0.5})
    apart = cell_detections(grids, sizes, nms, "m", ["present", "open"], ps, (pi, pc), class_probs=probs)
    alone = detections_at(grids, sizes, OPEN.box_params(nms), ps, class_probs=probs)
    np.testing.assert_array_equal(apart[Cell.of("m", "open", 75)].score, alone[75.0].score)
    with pytest.raises(ValueError, match="order within each image"):
        cell_detections(grids, sizes, params, "m", ["present", "open"], ps, (pi, pc[::-1]), class_probs=probs)


def test_detections_of_every_pair_cover_every_class():
    grids, sizes = batch(3, 5)
    det = detections_at(grids, sizes, BoxParams(), [90.0])[90.0]
    assert set(det.class_id.tolist()) == set(range(5)) and set(det.image.tolist()) == {0, 1, 2}
    assert np.all(det.xyxy[:, 2] <= sizes[det.image, 0]) and np.all(det.xyxy[:, 3] <= sizes[det.image, 1])
    with pytest.raises(ValueError):
        detections_at(grids, sizes, BoxParams(class_prob_weight=True), [90.0])


def test_worker_processes_give_identical_results():
    grids, sizes = batch(8, 3)
    params = BoxParams(percentile=75)
    one = detections_at(grids, sizes, params, [75, 90], workers=1, chunk_pairs=5)
    two = detections_at(grids, sizes, params, [75, 90], workers=2, chunk_pairs=5)
    for p in one:
        np.testing.assert_array_equal(one[p].xyxy, two[p].xyxy)
        np.testing.assert_array_equal(one[p].score, two[p].score)
        np.testing.assert_array_equal(one[p].image, two[p].image)
        np.testing.assert_array_equal(one[p].class_id, two[p].class_id)


def test_workers_never_rerun_the_callers_main_script(tmp_path, monkeypatch):
    # Streamlit installs the page script as __main__ and keeps it there; a spawned worker that re-ran it
    # would die (the CI failure after the dashboard tests). A script that explodes on import stands in.
    import sys
    import types

    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the caller script ran again in a worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    fake_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    grids, sizes = batch(6, 2)
    params = BoxParams(percentile=80)
    one = detections_at(grids, sizes, params, [80], workers=1, chunk_pairs=3)
    two = detections_at(grids, sizes, params, [80], workers=2, chunk_pairs=3)
    np.testing.assert_array_equal(one[80.0].xyxy, two[80.0].xyxy)
    assert sys.modules["__main__"] is fake_main
