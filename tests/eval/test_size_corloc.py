"""AP by object size (COCO's area buckets and ignore rule, every interpolation) and CorLoc, on real DIOR boxes,
against pycocotools and independent plain-Python loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surgery_core.data.detections import Detections
from surgery_core.eval.ap import AREA_RANGES, SIZES, evaluate, voc_match
from surgery_core.eval.corloc import corloc
from tests.eval.test_ap import K, SEED_IOUS, best_overlap, dior_gt, pycocotools_eval, ref_voc_ap, synth_detections  # noqa: F401  (fixture)


# ------------------------------------------------------------------------------------------ references
def ref_voc_size(gt: Detections, det: Detections, cls: int, ovthresh: float, lo: float, hi: float):
    """voc_eval.py for one class as plain loops, with COCO's area rule: ground truth outside [lo, hi] plays the
    devkit's 'difficult' role, and a detection that is not a TP and lies outside [lo, hi] is dropped."""
    def area(b):
        return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)

    recs: dict[int, dict] = {}
    npos = 0
    for j in range(len(gt)):
        if gt.class_id[j] == cls:
            b = [float(v) for v in gt.xyxy[j]]
            ign = not (lo <= area(b) <= hi)
            R = recs.setdefault(int(gt.image[j]), {"bbox": [], "det": [], "ign": []})
            R["bbox"].append(b)
            R["det"].append(False)
            R["ign"].append(ign)
            npos += not ign
    sel = [i for i in range(len(det)) if det.class_id[i] == cls]
    order = np.argsort(-np.array([det.score[i] for i in sel]), kind="stable")
    tps, fps = [], []
    for d in order:
        i = sel[d]
        bb = [float(v) for v in det.xyxy[i]]
        R = recs.get(int(det.image[i]))
        ovmax, jmax = best_overlap(R["bbox"] if R is not None else [], bb)
        tp = False
        if ovmax >= ovthresh:
            if R["ign"][jmax]:
                continue  # matched to ignored ground truth: neither TP nor FP
            if not R["det"][jmax]:
                R["det"][jmax] = tp = True
        if not tp and not (lo <= area(bb) <= hi):
            continue  # an unmatched detection outside the range is ignored
        tps.append(float(tp))
        fps.append(float(not tp))
    if npos == 0:
        return None
    tp, fp = np.cumsum(tps), np.cumsum(fps)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec


def ref_corloc(gt: Detections, det: Detections, cls: int, t: float) -> tuple[int, int]:
    """(hits, images) of one class, a plain loop: per image with GT of the class, its top-scoring box of the class
    (first in input order on ties) must reach IoU >= t with some GT box of the class."""
    images = sorted({int(gt.image[j]) for j in range(len(gt)) if gt.class_id[j] == cls})
    hits = 0
    for img in images:
        top, top_score = None, -math.inf
        for i in range(len(det)):
            if det.class_id[i] == cls and det.image[i] == img and det.score[i] > top_score:
                top, top_score = i, det.score[i]
        if top is None:
            continue
        bb = [float(v) for v in det.xyxy[top]]
        best = 0.0
        for j in range(len(gt)):
            if gt.class_id[j] == cls and gt.image[j] == img:
                g = [float(v) for v in gt.xyxy[j]]
                iw = max(min(g[2], bb[2]) - max(g[0], bb[0]), 0.0)
                ih = max(min(g[3], bb[3]) - max(g[1], bb[1]), 0.0)
                uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - iw * ih
                best = max(best, iw * ih / uni if uni > 0 else 0.0)
        hits += best >= t
    return hits, len(images)


# ------------------------------------------------------------------------------------------ AP by size
def test_dior_sample_has_every_size(dior_gt):
    a = dior_gt.area
    for size in SIZES:
        lo, hi = AREA_RANGES[size]
        assert ((a >= lo) & (a <= hi)).sum() > 100, size


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_by_size_equals_pycocotools_aps_apm_apl(dior_gt, seed):
    det = synth_detections(dior_gt, seed, int(dior_gt.image.max()) + 1)
    ref = pycocotools_eval(dior_gt, det)   # default parameters: stats[3:6] = APs, APm, APl over .50:.95
    for i, size in enumerate(SIZES):
        ours = evaluate(dior_gt, det, K, None, "coco", area=size)
        assert abs(ours.mAP - ref.stats[3 + i]) <= 1e-12, size
        prec = ref.eval["precision"][:, :, :, 1 + i, -1]   # [T, R, K] in this area range, maxDets 100
        for k in range(K):
            if (prec[:, :, k] > -1).all():
                assert abs(ours.per_class_ap[k] - prec[:, :, k].mean()) <= 1e-12
            else:
                assert math.isnan(ours.per_class_ap[k]) and ours.n_gt[k] == 0


@pytest.mark.parametrize("interp", ["voc07", "voc"])
@pytest.mark.parametrize("size", SIZES)
def test_voc_by_size_equals_a_devkit_loop_with_the_area_rule(dior_gt, interp, size):
    det = synth_detections(dior_gt, 2, int(dior_gt.image.max()) + 1)
    lo, hi = AREA_RANGES[size]
    ours = evaluate(dior_gt, det, K, SEED_IOUS, interp, area=size)
    for ti, t in enumerate(SEED_IOUS):
        for k in range(K):
            ref = ref_voc_size(dior_gt, det, k, t, lo, hi)
            if ref is None:
                assert math.isnan(ours.ap[ti, k])
                continue
            expected = ref_voc_ap(ref[0], ref[1], interp == "voc07")
            assert abs(ours.ap[ti, k] - expected) <= 1e-15, (size, t, k)
            np.testing.assert_array_equal(ours.recall[ti][k], ref[0])


@pytest.mark.parametrize("interp", ["voc07", "voc", "coco"])
def test_the_all_range_is_plain_ap_and_a_shared_match_serves_every_size(dior_gt, interp):
    det = synth_detections(dior_gt, 3, int(dior_gt.image.max()) + 1)
    plain = evaluate(dior_gt, det, K, SEED_IOUS, interp)
    np.testing.assert_array_equal(evaluate(dior_gt, det, K, SEED_IOUS, interp, area="all").ap, plain.ap)
    np.testing.assert_array_equal(evaluate(dior_gt, det, K, SEED_IOUS, interp, area=(0, 1e10)).ap, plain.ap)
    if interp != "coco":
        m = voc_match(dior_gt, det)
        for size in SIZES:
            np.testing.assert_array_equal(evaluate(dior_gt, det, K, SEED_IOUS, interp, match=m, area=size).ap,
                                          evaluate(dior_gt, det, K, SEED_IOUS, interp, area=size).ap)


def test_size_rule_by_hand():
    # one small GT (10x10) and one large (200x200) of class 0 in image 0
    gt = Detections([[0, 0, 10, 10], [100, 100, 300, 300]], [1, 1], [0, 0], [0, 0])
    det = Detections([[100, 100, 300, 300],   # hits the large GT: ignored under "small"
                      [0, 0, 10, 10],         # hits the small GT: TP under "small"
                      [500, 500, 700, 700]],  # a large FP: ignored under "small" (unmatched, out of range)
                     [0.9, 0.8, 0.7], [0, 0, 0], [0, 0, 0])
    small = evaluate(gt, det, 1, 0.5, "voc", area="small")
    assert small.n_gt.tolist() == [1] and small.ap[0, 0] == 1.0
    large = evaluate(gt, det, 1, 0.5, "voc", area="large")
    # large: TP (0.9), small-GT hit ignored, large FP counted -> precision 1 at recall 1
    assert large.n_gt.tolist() == [1] and large.ap[0, 0] == 1.0
    assert list(large.precision[0][0]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="area must be one of"):
        evaluate(gt, det, 1, 0.5, "voc", area="tiny")


# ------------------------------------------------------------------------------------------ CorLoc
@pytest.mark.parametrize("seed", [0, 5])
def test_corloc_equals_a_plain_loop_on_dior(dior_gt, seed):
    det = synth_detections(dior_gt, seed, int(dior_gt.image.max()) + 1)
    ts = (0.3, 0.5, 0.7)
    res = corloc(dior_gt, det, K, ts)
    per_class = []
    for k in range(K):
        for ti, t in enumerate(ts):
            hits, n = ref_corloc(dior_gt, det, k, t)
            assert (res.hits[ti, k], res.n_images[k]) == (hits, n)
            if n:
                assert res.corloc[ti, k] == hits / n
            else:
                assert math.isnan(res.corloc[ti, k])
        if res.n_images[k]:
            per_class.append(res.corloc[:, k])
    np.testing.assert_array_equal(res.mean, np.mean(per_class, axis=0))
    assert 0.0 < res.mean[1] < 1.0


def test_corloc_ties_misses_and_threshold_by_hand():
    gt = Detections([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1], [0, 1], [0, 0])   # image 0: class 0 and 1
    det = Detections([[0, 0, 10, 10],      # class 0, score 0.5: a hit, but not the top box
                      [20, 20, 30, 30],    # class 0, score 0.9: the top box, a miss
                      [0, 0, 10, 10],      # class 0 in image 1 (no GT of class 0 there): never counts
                      [50, 50, 60, 65]],   # class 1, IoU 100/150: a hit at 0.5, a miss at 0.7
                     [0.5, 0.9, 1.0, 0.3], [0, 0, 0, 1], [0, 0, 1, 0])
    res = corloc(gt, det, 3, (0.5, 0.7))
    assert res.n_images.tolist() == [1, 1, 0]
    assert res.hits.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert res.mean.tolist() == [0.5, 0.0] and math.isnan(res.corloc[0, 2])
    # equal scores: the first in input order is the top box
    tie = Detections([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.5], [0, 0], [0, 0])
    assert corloc(gt, tie, 2, 0.5).hits[0, 0] == 1
    assert corloc(gt, tie[np.array([1, 0])], 2, 0.5).hits[0, 0] == 0
    assert corloc(gt, Detections.empty(), 2, 0.5).mean.tolist() == [0.0]
