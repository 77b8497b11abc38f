"""The compiled cap (cutter.cap_keep behind maxdets.cap_indices) against the plain sort-and-keep loop, on scores
that stress its selection: many ties at the cap's edge, -0.0 beside 0.0, negative scores, NaN (numpy's path),
images in any order, caps of 1 and above every image's count."""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.data.detections import Detections
from surgery_core.eval import cutter
from surgery_core.eval.maxdets import cap_detections, cap_indices
from tests.run.test_boxcells import assert_same, plain_cap


def dets(image: np.ndarray, score: np.ndarray) -> Detections:
    n = len(image)
    xy = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
    return Detections(np.hstack([xy, xy + 1.0]), score, np.zeros(n, np.int64), image)


@pytest.mark.parametrize("seed", range(12))
def test_compiled_cap_equals_the_plain_loop_on_ties_signed_zeros_and_negatives(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    image = rng.integers(0, int(rng.integers(1, 30)), n)
    if seed % 2:
        image = np.sort(image)  # adjacent, as the chunks give them
    score = rng.integers(-5, int(rng.integers(2, 25)), n) / 7.0
    score[rng.random(n) < 0.2] = -0.0
    score[rng.random(n) < 0.2] = 0.0
    for cap in (1, 2, 17, 100):
        det = dets(image, score)
        assert_same(cap_detections(det, cap), plain_cap(det, cap))


def test_nan_scores_rank_last_as_numpy_sorts_them():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4, 400)
    score = rng.integers(0, 5, 400) / 4.0
    score[rng.random(400) < 0.5] = np.nan
    keep = cap_indices(image, score, 30)
    # the reference with NaN as the lowest score, ties by position
    ranked = np.where(np.isnan(score), -np.inf, score)
    expected = np.sort(np.concatenate([
        sorted(np.flatnonzero(image == i), key=lambda j: (-ranked[j], j))[:30] for i in np.unique(image)]))
    np.testing.assert_array_equal(keep, expected)


def test_cap_keep_drops_only_within_images_over_the_cap():
    image = np.array([0, 0, 0, 1, 2, 2, 2, 2], np.int64)
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.3, 0.3, 0.3, 0.3])
    keep = cutter.cap_keep(image, score, 2)
    # image 0: 0.9 and the first 0.5; image 1 under the cap; image 2: the first two of four equal scores
    assert keep.tolist() == [True, True, False, True, True, True, False, False]
