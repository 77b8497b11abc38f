"""Under a cap, the cutter skips the maps (and the cuts of a map) whose boxes the cap would drop
(``cutting._CapFloor``): the boxes kept are those of cutting everything and capping afterwards, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.data.detections import Detections
from surgery_core.eval import cutting
from surgery_core.eval.boxes import BoxParams
from surgery_core.eval.cutting import cell_detections, detections_at
from surgery_core.eval.maxdets import cap_detections
from surgery_core.eval.protocols import OPEN, PRESENT, Cell

RNG = np.random.default_rng(20261208)


def noisy(n_img: int, n_cls: int, grid: int = 12, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Noise grids (many components per map: the cap bites); ``levels``: values on a few steps (equal scores)."""
    g = RNG.normal(0, 1, (n_img, n_cls, grid, grid))
    if levels:
        g = np.round(g * levels) / levels
    sizes = np.array([[800, 800]] * (n_img - 1) + [[640, 480]])
    return g.astype(np.float32), sizes


def skewed_probs(n_img: int, n_cls: int) -> np.ndarray:
    """A softmax with a few likely classes per image, as a run's are."""
    logits = RNG.normal(0, 1.5, (n_img, n_cls))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def same(got: Detections, want: Detections) -> None:
    for f in ("xyxy", "score", "class_id", "image"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)


def count_cut_maps(monkeypatch) -> list[int]:
    """How many maps the cutter cuts (cut_rects calls), counted."""
    calls = []
    real = cutting.cut_rects

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(cutting, "cut_rects", counted)
    return calls


@pytest.mark.parametrize("score,min_area,levels,cap", [("mean", 0.0, None, 12), ("max", 0.0, None, 5),
                                                       ("mean", 900.0, None, 8), ("mean", 0.0, 3, 6),
                                                       ("max", 0.0, 2, 4)])
def test_capped_cut_equals_full_cut_capped_afterwards(monkeypatch, score, min_area, levels, cap):
    grids, sizes = noisy(6, 9, levels=levels)
    probs = skewed_probs(6, 9)
    probs[1, 3] = 0.0
    params = OPEN.box_params(BoxParams(score=score, min_area=min_area, morph_kernel=3, box_resolution=64))
    ps = [30.0, 50.0, 70.0, 90.0]
    full = detections_at(grids, sizes, params, ps, class_probs=probs, max_dets=0)
    calls = count_cut_maps(monkeypatch)
    got = detections_at(grids, sizes, params, ps, class_probs=probs, max_dets=cap, chunk_pairs=20)
    for p in ps:
        same(got[p], cap_detections(full[p], cap))
        assert len(got[p]) < len(full[p])  # the cap bites
    assert len(calls) < 6 * 9  # and maps were skipped


@pytest.mark.parametrize("workers", [1, 2])
def test_both_protocols_under_a_cap_keep_every_present_box(workers):
    # Open and present cut together: the present pairs are always cut whole (their own cap, raw scores), the
    # open-only ones may be skipped; both equal cutting everything and capping afterwards.
    grids, sizes = noisy(7, 8)
    probs = skewed_probs(7, 8)
    pi = np.array([0, 0, 2, 3, 3, 5, 6])
    pc = np.array([1, 6, 0, 2, 7, 4, 3])
    ps = [40.0, 60.0, 80.0]
    params = BoxParams(morph_kernel=3, box_resolution=64)
    got = cell_detections(grids, sizes, params, "m", ["present", "open"], ps, (pi, pc), class_probs=probs,
                          workers=workers, max_dets=7)
    full_open = detections_at(grids, sizes, OPEN.box_params(params), ps, class_probs=probs)
    full_present = detections_at(grids, sizes, PRESENT.box_params(params), ps, pair_image=pi, pair_class=pc,
                                 class_probs=probs)
    for p in ps:
        same(got[Cell.of("m", "open", p)], cap_detections(full_open[p], 7))
        same(got[Cell.of("m", "present", p)], cap_detections(full_present[p], 7))


def test_nan_and_negative_probabilities_skip_nothing_wrongly():
    grids, sizes = noisy(4, 6)
    probs = skewed_probs(4, 6).astype(np.float64)
    probs[0, 2], probs[1, 0], probs[2, 5] = np.nan, -0.5, -1e-3  # NaN scores; negative ones (at most 0)
    params = OPEN.box_params(BoxParams(morph_kernel=3, box_resolution=64))
    ps = [50.0, 80.0]
    full = detections_at(grids, sizes, params, ps, class_probs=probs)
    got = detections_at(grids, sizes, params, ps, class_probs=probs, max_dets=5)
    for p in ps:
        same(got[p], cap_detections(full[p], 5))


def test_cap_floor_is_the_kth_highest_score_per_cut():
    f = cutting._CapFloor(3, 2)
    f.new_image()
    assert f.needed(0.0) is None  # nothing cut yet: every cut
    f.add(np.array([0, 0, 1, 2, 2, 2]), np.array([0.9, 0.1, 0.5, 0.3, 0.8, 0.4]))
    assert f.floor.tolist() == [0.1, -np.inf, 0.4]
    assert f.needed(0.35).tolist() == [0, 1]  # below cut 2's floor; cut 1 has fewer than 2 boxes yet
    assert f.needed(0.05).tolist() == [1]
    f.add(np.array([1, 1, 0]), np.array([0.7, 0.6, 0.95]))
    assert f.floor.tolist() == [0.9, 0.6, 0.4]
    assert f.needed(0.5).tolist() == [2]  # below the floor at cuts 0 and 1: only cut 2 could keep a box
    assert f.needed(0.4).tolist() == [2]  # equal to the floor: a tie at the cap's edge may be kept
    assert f.needed(0.3).tolist() == [] and f.needed(np.nan) is None
    f.add(np.array([2]), np.array([np.nan]))
    assert f.needed(0.0) is None  # NaN scores: the floor is off for this image


def test_cap_floor_heaps_equal_sorting_everything_so_far():
    rng = np.random.default_rng(5)
    for k in (1, 3, 16):
        f = cutting._CapFloor(4, k)
        f.new_image()
        seen: list[list[float]] = [[], [], [], []]
        for _ in range(30):
            n = int(rng.integers(0, 12))
            index = rng.integers(0, 4, n)
            score = np.round(rng.random(n) * 8) / 8  # many equal scores
            f.add(index, score)
            for i, s in zip(index.tolist(), score.tolist()):
                seen[i].append(s)
            want = [sorted(v, reverse=True)[k - 1] if len(v) >= k else -np.inf for v in seen]
            assert f.floor.tolist() == want
