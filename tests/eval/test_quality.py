"""Heatmap quality: pointing games, GT response, best-box IoU, activation ratio and the aggregate table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgery_core.data.detections import Detections
from surgery_core.eval.boxes import BoxParams
from surgery_core.eval.maps import working_map
from surgery_core.eval.quality import (
    PairQuality,
    aggregate_quality,
    best_box_iou,
    energy_share,
    heatmap_quality,
    pointing_hit,
    pointing_point,
    quality_records,
)

# box_resolution=7 makes the working map the grid itself: exact figures on hand-built grids.
GRID_RES = BoxParams(morph_kernel=1, box_resolution=7)


def hot_grid(low=0.0, high=1.0):
    grid = np.full((7, 7), low, np.float32)
    grid[2:4, 3:6] = high  # rows 2-3, columns 3-5: x 300-600, y 200-400 on a 700x700 image
    return grid


def test_best_box_iou():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 0, 0]], float)
    assert best_box_iou(a, b) == pytest.approx(1 / 3)
    assert best_box_iou(np.zeros((0, 4)), b) == 0.0


def test_pointing_tolerance_edge_is_inclusive_and_scales_with_image_size():
    # 448 px image: 15 px at 224 scale is 30 px.
    point = (100.0, 100.0)
    assert pointing_hit(point, [[130.0, 90.0, 200.0, 110.0]], 448, 448)
    assert not pointing_hit(point, [[130.001, 90.0, 200.0, 110.0]], 448, 448)
    assert pointing_hit(point, [[0.0, 0.0, 70.0, 70.0]], 448, 448)          # 30 px off in x and in y
    assert not pointing_hit(point, [[0.0, 0.0, 70.0, 69.9]], 448, 448)
    assert not pointing_hit(point, [[130.0, 90.0, 200.0, 110.0]], 448, 448, tolerance_px_at_224=14.9)
    # 224 px image: the tolerance is 15 px; a non-square image scales each axis by its own side.
    assert pointing_hit(point, [[115.0, 0.0, 120.0, 224.0]], 224, 224)
    assert not pointing_hit(point, [[115.5, 0.0, 120.0, 224.0]], 224, 224)
    assert pointing_hit(point, [[0.0, 160.0, 224.0, 170.0]], 224, 896)      # 60 px vertical tolerance
    assert not pointing_hit(point, [[130.0, 0.0, 140.0, 224.0]], 224, 896)  # still 15 px horizontally


def test_pointing_point_is_the_centroid_of_the_maximal_pixels():
    # Maximum in the corner cell: bilinear upsampling clamps the first 16 working pixels (at 224) to it.
    grid = np.zeros((7, 7), np.float32)
    grid[0, 0] = 1.0
    wmap = working_map(grid, 800, 800, 224)
    x, y = pointing_point(wmap, 800, 800, 224)
    assert (x, y) == pytest.approx((8 * 800 / 224, 8 * 800 / 224))
    # A constant map points at the image centre.
    assert pointing_point(working_map(np.full((7, 7), 0.2, np.float32), 800, 600, 224), 800, 600, 224) == \
        pytest.approx((400.0, 300.0))
    # At grid resolution a single hot cell points at its centre, two tied cells at their midpoint.
    grid = np.zeros((7, 7), np.float32)
    grid[2, 4] = 1.0
    assert pointing_point(grid, 700, 700, 7) == pytest.approx((450.0, 250.0))
    grid[3, 4] = 1.0
    assert pointing_point(grid, 700, 700, 7) == pytest.approx((450.0, 300.0))


def test_pointing_game_hit_and_miss_through_heatmap_quality():
    grid = np.zeros((7, 7), np.float32)
    grid[2, 4] = 1.0  # points at (450, 250) on a 700 px image
    hit = heatmap_quality(grid, 700, 700, [[400, 200, 500, 300]], GRID_RES, [90])
    assert hit.pointing_hit
    tol = 15 * 700 / 224  # 46.875 px
    assert heatmap_quality(grid, 700, 700, [[450 + tol, 0, 700, 700]], GRID_RES, [90]).pointing_hit
    assert not heatmap_quality(grid, 700, 700, [[450 + tol + 0.01, 0, 700, 700]], GRID_RES, [90]).pointing_hit


def test_energy_of_a_map_entirely_inside_the_box_is_one():
    q = heatmap_quality(hot_grid(), 700, 700, [[300, 200, 600, 400]], GRID_RES, [90])
    assert q.energy == 1.0
    # Two GT boxes covering 4 of the 6 hot cells between them (union, no double counting).
    q = heatmap_quality(hot_grid(), 700, 700, [[300, 200, 500, 400], [300, 200, 400, 300]], GRID_RES, [90])
    assert q.energy == pytest.approx(4 / 6)
    # A constant map counts as uniform: the union's share of the pixels.
    q = heatmap_quality(np.full((7, 7), 0.2, np.float32), 700, 700, [[0, 0, 700, 100]], GRID_RES, [90])
    assert q.energy == pytest.approx(7 / 49)


def test_energy_share_direct():
    wmap = np.array([[0.0, 1.0], [3.0, 0.0]], np.float32)
    assert energy_share(wmap, np.array([[True, True], [False, False]])) == pytest.approx(0.25)


def test_gt_response_is_raw_similarity_inside_gt_boxes():
    grid = hot_grid(low=0.15, high=0.25)
    grid[3, 5] = 0.21
    q = heatmap_quality(grid, 700, 700, [[300, 200, 600, 400]], GRID_RES, [90])
    assert q.gt_mean == pytest.approx((5 * 0.25 + 0.21) / 6, rel=1e-6)
    assert q.gt_max == pytest.approx(0.25, rel=1e-6)
    # At 224 on an 800 px image, a constant grid has that constant everywhere inside any box.
    q = heatmap_quality(np.full((7, 7), 0.18, np.float32), 800, 800, [[10, 10, 50, 40]], BoxParams(), [90])
    assert q.gt_mean == pytest.approx(0.18, rel=1e-6) and q.gt_max == pytest.approx(0.18, rel=1e-6)


def test_best_iou_box_count_and_activation_ratio_per_percentile():
    gt = [[300, 200, 450, 400]]  # half of the hot region's box
    q = heatmap_quality(hot_grid(), 700, 700, gt, GRID_RES, [50, 90])
    assert q.percentiles == (50.0, 90.0)
    # 50th percentile of 43 zeros and 6 ones is 0: everything is foreground, one 700x700 box.
    assert q.n_boxes == (1, 1)
    assert q.activation_ratio == pytest.approx((1.0, 6 / 49))
    assert q.best_iou == pytest.approx((150 * 200 / 700 ** 2, 0.5))


def test_activation_ratio_is_before_morphology():
    grid = np.zeros((7, 7), np.float32)
    grid[3, 3] = 1.0  # an interior speck (OpenCV's borders let specks touching the edge survive closing)
    q = heatmap_quality(grid, 700, 700, [[0, 0, 700, 700]], BoxParams(morph_kernel=3, box_resolution=7), [99])
    assert q.activation_ratio == pytest.approx((1 / 49,))
    assert q.n_boxes == (0,)  # opening removed the single-cell speck
    assert q.best_iou == (0.0,)


def test_quality_needs_ground_truth():
    with pytest.raises(ValueError):
        heatmap_quality(hot_grid(), 700, 700, np.zeros((0, 4)), GRID_RES, [90])


def test_quality_records_cover_present_pairs_with_all_their_boxes():
    grids = np.stack([np.stack([hot_grid(), hot_grid()[::-1]]), np.stack([hot_grid(), hot_grid()])])
    gt = Detections(xyxy=[[300, 200, 600, 400], [0, 0, 10, 10], [300, 300, 600, 500], [300, 200, 600, 400]],
                    score=[1, 1, 1, 1], class_id=[0, 0, 1, 0], image=[7, 7, 7, 9])
    recs = quality_records(grids, [[700, 700], [700, 700]], gt, GRID_RES, [90], image_ids=[7, 8])
    assert [(r.image, r.class_id) for r in recs] == [(7, 0), (7, 1)]  # image 9 has no grid
    assert recs[0].best_iou == (1.0,)
    assert recs[1].best_iou == (1.0,)  # class 1's grid is flipped: hot rows 3-4
    want = heatmap_quality(hot_grid(), 700, 700, [[300, 200, 600, 400], [0, 0, 10, 10]], GRID_RES, [90],
                           image=7, class_id=0)
    assert recs[0] == want
    assert quality_records(grids, [[700, 700], [700, 700]], gt, GRID_RES, [90], image_ids=[7, 8],
                           workers=2) == recs


def record(cls, best, n, act, gt_mean, gt_max, hit, energy):
    return PairQuality(image=0, class_id=cls, percentiles=(75.0, 90.0), best_iou=best, n_boxes=n,
                       activation_ratio=act, gt_mean=gt_mean, gt_max=gt_max, pointing_hit=hit, energy=energy)


def test_aggregate_reproduces_the_table_and_serialises():
    recs = [record(0, (0.2, 0.1), (4, 5), (0.25, 0.10), 0.18, 0.20, True, 0.5),
            record(0, (0.0, 0.3), (2, 1), (0.25, 0.10), 0.20, 0.24, False, 0.1),
            record(1, (0.4, 0.2), (6, 3), (0.26, 0.11), 0.16, 0.19, True, 0.3)]
    agg = aggregate_quality(recs, class_names=["airplane", "stadium"])
    json.dumps(agg)
    assert agg["n_pairs"] == 3 and agg["percentiles"] == [75.0, 90.0]
    row75, row90 = agg["by_percentile"]
    assert row75["mean_best_iou"] == pytest.approx(0.2) and row75["max_best_iou"] == pytest.approx(0.4)
    assert row90["mean_best_iou"] == pytest.approx(0.2) and row90["max_best_iou"] == pytest.approx(0.3)
    assert row75["mean_n_boxes"] == pytest.approx(4.0) and row90["mean_n_boxes"] == pytest.approx(3.0)
    assert row75["mean_activation_ratio"] == pytest.approx(0.76 / 3)
    assert row75["per_class"]["airplane"] == {"n": 2, "mean_best_iou": pytest.approx(0.1)}
    gr = agg["gt_response"]
    assert gr["mean_mean"] == pytest.approx(0.18) and gr["mean_std"] == pytest.approx(np.std([0.18, 0.20, 0.16]))
    assert gr["max_mean"] == pytest.approx(0.21) and gr["max_std"] == pytest.approx(np.std([0.20, 0.24, 0.19]))
    pg = agg["pointing_game"]
    assert pg["overall"] == pytest.approx(2 / 3) and pg["mean_over_classes"] == pytest.approx(0.75)
    assert pg["per_class"]["airplane"] == {"n": 2, "hits": 1, "accuracy": 0.5}
    epg = agg["energy_pointing_game"]
    assert epg["overall"] == pytest.approx(0.3) and epg["mean_over_classes"] == pytest.approx(0.3)
    assert epg["per_class"]["stadium"] == {"n": 1, "mean": pytest.approx(0.3)}
    assert json.loads(json.dumps(recs[0].to_dict()))["best_iou"] == [0.2, 0.1]


def test_aggregate_of_nothing_and_of_mixed_percentiles():
    agg = aggregate_quality([])
    json.dumps(agg)
    assert agg["n_pairs"] == 0 and agg["pointing_game"]["overall"] is None
    other = PairQuality(0, 0, (50.0,), (0.0,), (0,), (0.5,), 0.1, 0.1, False, 0.0)
    with pytest.raises(ValueError):
        aggregate_quality([record(0, (0, 0), (0, 0), (0, 0), 0, 0, False, 0), other])
