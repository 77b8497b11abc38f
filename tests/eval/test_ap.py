"""AP engine: hand-computed cases, a devkit-faithful VOC reference and pycocotools, on real DIOR boxes."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tarfile
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from surgery_core.data.classes import DIOR_CLASSES, ClassIndex
from surgery_core.data.detections import Detections
from surgery_core.eval.ap import COCO_IOUS, evaluate, voc_ap, voc_match
from surgery_core.eval.matching import box_iou, match, match_detections, paired_iou

# Same place as conftest.py's DIOR_TARBALL: ../shared next to the repository unless SURGERY_SHARED says.
TARBALL = Path(os.environ.get("SURGERY_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "data" / "dior" / "DIOR-annotations-hbb.tar.gz"
HBB = "DIOR/Annotations/Horizontal Bounding Boxes/"
K = len(DIOR_CLASSES)
SEED_IOUS = (0.05, 0.10, 0.15, 0.20, 0.30, 0.50)
# Files with DIOR's three zero-size test boxes, always part of the sample.
ZERO_BOX_FILES = ("15504", "15906", "16734")


# ----------------------------------------------------------------------------------------------------
# Real DIOR ground truth: a few hundred annotation files of the test split, extracted into tmp.
# ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dior_gt(tmp_path_factory) -> Detections:
    if not TARBALL.is_file():
        pytest.fail(f"real DIOR annotations not found at {TARBALL} (set SURGERY_SHARED)")
    out = tmp_path_factory.mktemp("dior")
    with tarfile.open(TARBALL, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        test_ids = tar.extractfile(members["DIOR/ImageSets/Main/test.txt"]).read().decode().split()
        wanted = sorted(set(test_ids[::40]) | set(ZERO_BOX_FILES))   # ~300 files spread over the split
        chosen = [members[f"{HBB}{i}.xml"] for i in wanted]
        tar.extractall(out, members=chosen, filter="data")
    index = ClassIndex(DIOR_CLASSES)
    boxes, classes, images = [], [], []
    for img, stem in enumerate(wanted):
        root = ET.parse(out / HBB / f"{stem}.xml").getroot()
        for obj in root.iter("object"):
            b = obj.find("bndbox")
            boxes.append([float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
            classes.append(index.lookup(obj.findtext("name")))
            images.append(img)
    assert None not in classes
    gt = Detections(np.array(boxes), np.ones(len(boxes)), classes, images)
    assert len(wanted) >= 290 and len(gt) > 2000
    assert (gt.area == 0).sum() >= 3
    return gt


def synth_detections(gt: Detections, seed: int, n_images: int) -> Detections:
    """Jittered copies of ground truth (some dropped, some duplicated), false positives anywhere (including
    images with no ground truth at all) and coarse scores so that many tie."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(gt)) < 0.85
    dup = rng.random(len(gt)) < 0.15
    src = np.concatenate([np.flatnonzero(keep), np.flatnonzero(dup)])
    b = gt.xyxy[src]
    wh = np.maximum(b[:, 2:] - b[:, :2], 1.0)
    b = b + rng.normal(0.0, 0.12, b.shape) * np.tile(wh, 2)
    # Half of the jittered boxes land on integers, like many detectors' outputs, to create IoU ties.
    rint = rng.random(len(b)) < 0.5
    b[rint] = np.round(b[rint])
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    # Some zero-width and zero-size boxes (DIOR itself has zero-size ground truth).
    flat = rng.random(len(b)) < 0.01
    b[flat, 2] = b[flat, 0]
    point = rng.random(len(b)) < 0.005
    b[point, 2:] = b[point, :2]
    cls = gt.class_id[src]
    img = gt.image[src]
    n_fp = len(gt) // 3
    xy = rng.uniform(0, 700, (n_fp, 2))
    fp = np.concatenate([xy, xy + rng.uniform(0, 150, (n_fp, 2))], axis=1)
    fp_img = rng.integers(0, n_images + 5, n_fp)       # a few images beyond the ground truth's
    fp_cls = rng.integers(0, K, n_fp)
    xyxy = np.concatenate([b, fp])
    score = rng.integers(0, 25, len(xyxy)) / 24.0     # coarse: lots of exact ties
    return Detections(xyxy, score, np.concatenate([cls, fp_cls]), np.concatenate([img, fp_img]))


# ----------------------------------------------------------------------------------------------------
# References: the PASCAL devkit's voc_eval.py logic (>= and continuous coordinates), and pycocotools.
# ----------------------------------------------------------------------------------------------------

def ref_voc_ap(rec, prec, use_07_metric):
    """voc_eval.py's voc_ap, verbatim."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
    else:
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def best_overlap(gts: list[list[float]], bb: list[float]) -> tuple[float, int]:
    """voc_eval.py's overlap search: the largest IoU of ``bb`` with one of ``gts`` and its index (-inf, -1 when
    there is none); the first maximum wins, as np.argmax."""
    ovmax, jmax = -np.inf, -1
    for jj, g in enumerate(gts):
        iw = max(min(g[2], bb[2]) - max(g[0], bb[0]), 0.0)
        ih = max(min(g[3], bb[3]) - max(g[1], bb[1]), 0.0)
        inters = iw * ih
        uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inters
        ov = inters / uni if uni > 0 else 0.0
        if ov > ovmax:  # strict
            ovmax, jmax = ov, jj
    return ovmax, jmax


def ref_voc_eval(gt: Detections, det: Detections, cls: int, ovthresh: float):
    """voc_eval.py for one class as plain loops: returns rec, prec and {detection index: tp}.

    Differences from the devkit, all required by docs/DESIGN.md section 5: IoU >= threshold (devkit: >),
    continuous box sizes (devkit: +1), a stable score sort (devkit: np.argsort's default), IoU 0 for an empty
    union.
    """
    class_recs: dict[int, dict] = {}
    npos = 0
    for j in range(len(gt)):
        if gt.class_id[j] == cls:
            R = class_recs.setdefault(int(gt.image[j]), {"bbox": [], "det": []})
            R["bbox"].append([float(v) for v in gt.xyxy[j]])
            R["det"].append(False)
            npos += 1
    sel = [i for i in range(len(det)) if det.class_id[i] == cls]
    confidence = np.array([det.score[i] for i in sel])
    sorted_ind = np.argsort(-confidence, kind="stable")
    nd = len(sel)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    flags = {}
    for d in range(nd):
        i = sel[sorted_ind[d]]
        R = class_recs.get(int(det.image[i]))
        bb = [float(v) for v in det.xyxy[i]]
        ovmax, jmax = best_overlap(R["bbox"] if R is not None else [], bb)
        if ovmax >= ovthresh:
            if not R["det"][jmax]:
                tp[d] = 1.0
                R["det"][jmax] = True
            else:
                fp[d] = 1.0
        else:
            fp[d] = 1.0
        flags[i] = bool(tp[d])
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, flags


def pycocotools_eval(gt: Detections, det: Detections, iou_thrs=None):
    """pycocotools COCOeval on dicts built here independently of surgery_core.eval.ap (bbox, defaults)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted(set(gt.image.tolist()) | set(det.image.tolist()))
    anns = []
    for j in range(len(gt)):
        x1, y1, x2, y2 = (float(v) for v in gt.xyxy[j])
        anns.append({"id": j + 1, "image_id": int(gt.image[j]) + 1, "category_id": int(gt.class_id[j]) + 1,
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    res = []
    for j in range(len(det)):
        x1, y1, x2, y2 = (float(v) for v in det.xyxy[j])
        res.append({"image_id": int(det.image[j]) + 1, "category_id": int(det.class_id[j]) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(det.score[j])})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": [{"id": i + 1} for i in images], "annotations": anns,
                           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(DIOR_CLASSES)]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(res)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if iou_thrs is not None:
            ev.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


# ----------------------------------------------------------------------------------------------------
# (a) hand-computed cases
# ----------------------------------------------------------------------------------------------------

def _small_case():
    # Class 0: two GT in image 0. Class 1: one GT, never detected. Class 2: no GT at all.
    gt = Detections([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]], [1, 1, 1], [0, 0, 1], [0, 0, 0])
    det = Detections([[0, 0, 10, 10],      # IoU 1 with GT 0 -> TP
                      [1, 1, 10, 10],      # best is GT 0 (0.81), already taken -> FP
                      [20, 20, 30, 31],    # IoU 100/110 with GT 1 -> TP below 0.909
                      [50, 50, 60, 60]],   # image 1 has no GT -> FP
                     [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0], [0, 0, 0, 1])
    return gt, det


def test_hand_voc07():
    gt, det = _small_case()
    r = evaluate(gt, det, 3, 0.5, "voc07")
    # rec = [.5, .5, 1, 1], prec = [1, .5, 2/3, .5]: levels 0...0.5 -> 1, 0.6...1.0 -> 2/3.
    assert r.ap[0, 0] == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)
    assert r.ap[0, 1] == 0.0 and math.isnan(r.ap[0, 2])
    assert r.mAP == pytest.approx((6 + 5 * 2 / 3) / 11 / 2, abs=1e-12)
    assert r.n_gt.tolist() == [2, 1, 0] and r.n_det.tolist() == [4, 0, 0]
    np.testing.assert_allclose(r.recall[0][0], [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(r.precision[0][0], [1, 0.5, 2 / 3, 0.5])


def test_hand_voc_all_point():
    gt, det = _small_case()
    r = evaluate(gt, det, 3, 0.5, "voc")
    assert r.ap[0, 0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=1e-12)
    assert r.mAP == pytest.approx((0.5 + 1 / 3) / 2, abs=1e-12)
    # Above 100/110 the third detection misses too: rec [.5, .5, .5, .5], prec [1, .5, 1/3, 1/4].
    r = evaluate(gt, det, 3, [0.5, 0.95], "voc")
    assert r.ap[1, 0] == pytest.approx(0.5, abs=1e-12)
    assert r.map_per_iou.tolist() == pytest.approx([(0.5 + 1 / 3) / 2, 0.25])
    assert r.mAP == pytest.approx(((0.5 + 1 / 3) / 2 + 0.25) / 2, abs=1e-12)


def test_hand_coco():
    gt, det = _small_case()
    r = evaluate(gt, det, 3, None, "coco")
    assert r.iou_thresholds == COCO_IOUS
    # IoU .50-.90: recall 1/2 at precision 1 (51 of 101 levels), then 2/3 up to recall 1 (50 levels).
    # IoU .95: only the first detection hits -> 51/101.
    low, high = (51 + 50 * 2 / 3) / 101, 51 / 101
    np.testing.assert_allclose(r.ap[:, 0], [low] * 9 + [high], atol=1e-12)
    assert (r.ap[:, 1] == 0).all() and np.isnan(r.ap[:, 2]).all()
    assert r.mAP == pytest.approx((9 * low + high) / 10 / 2, abs=1e-12)
    assert len(r.recall[0][0]) == 101 and len(r.precision[0][0]) == 101
    r = evaluate(gt, det, 3, 0.5, "coco")
    assert r.ap.shape == (1, 3) and r.ap[0, 0] == pytest.approx(low, abs=1e-12)


def test_voc_does_not_fall_back_to_second_best_but_coco_does():
    gt = Detections([[0, 0, 10, 10], [0, 0, 10, 9]], [1, 1], [0, 0], [0, 0])
    det = Detections([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], [0, 0])
    m = match_detections(gt, det, 0.5)
    assert m.extra["tp"].tolist() == [True, False]
    assert m.extra["gt_index"].tolist() == [0, 0]
    assert m.extra["iou"].tolist() == [1.0, 1.0]
    assert evaluate(gt, det, 1, 0.5, "voc").ap[0, 0] == pytest.approx(0.5)
    assert evaluate(gt, det, 1, 0.5, "coco").ap[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("gt_order", [(0, 1), (1, 0)])
def test_argmax_takes_first_ground_truth_on_iou_ties(gt_order):
    boxes = np.array([[0, 0, 10, 10], [10, 0, 20, 10]], dtype=float)[list(gt_order)]
    gt = Detections(boxes, [1, 1], [0, 0], [0, 0])
    # The first detection overlaps both GT by exactly 1/3; the second is exactly the right-hand GT.
    det = Detections([[5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8], [0, 0], [0, 0])
    m = match_detections(gt, det, 0.3)
    assert m.extra["gt_index"][0] == 0
    right_taken = gt_order == (1, 0)
    assert m.extra["tp"].tolist() == [True, not right_taken]


def test_score_ties_keep_input_order_and_threshold_is_inclusive():
    gt = Detections([[0, 0, 10, 10]], [1], [0], [0])
    det = Detections([[0, 0, 10, 5], [0, 0, 10, 10]], [0.5, 0.5], [0, 0], [0, 0])
    m = match_detections(gt, det, 0.5)
    assert m.extra["iou"].tolist() == [0.5, 1.0]          # exactly 0.5: counts at threshold 0.5
    assert m.extra["tp"].tolist() == [True, False]        # equal scores: input order decides
    m = match_detections(gt, det[np.array([1, 0])], 0.5)
    assert m.extra["tp"].tolist() == [True, False]


def test_voc07_uses_the_devkit_recall_levels():
    # 3 of 10 recalled at precision 1: recall 3/10 == 0.3 is below np.arange's 0.30000000000000004,
    # so the devkit counts 3 levels (0, .1, .2), not 4. We do the same on purpose.
    rec = np.array([0.1, 0.2, 3 / 10])
    prec = np.ones(3)
    assert voc_ap(rec, prec, True) == ref_voc_ap(rec, prec, True) == pytest.approx(3 / 11)
    assert voc_ap(rec, prec, False) == pytest.approx(0.3)
    assert voc_ap(np.zeros(0), np.zeros(0), True) == 0.0 == voc_ap(np.zeros(0), np.zeros(0), False)


# ----------------------------------------------------------------------------------------------------
# (b) VOC equality with the devkit-faithful reference on real DIOR boxes
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_voc_matches_devkit_reference_on_dior(dior_gt, seed):
    gt = dior_gt
    det = synth_detections(gt, seed, int(gt.image.max()) + 1)
    ious = SEED_IOUS + (0.7,)
    ours = {interp: evaluate(gt, det, K, ious, interp) for interp in ("voc07", "voc")}
    m = match(gt, det, ious)
    n_gt = np.bincount(gt.class_id, minlength=K)
    ref_ap = {"voc07": np.full((len(ious), K), np.nan), "voc": np.full((len(ious), K), np.nan)}
    for ti, t in enumerate(ious):
        for k in range(K):
            if n_gt[k] == 0:
                continue
            rec, prec, flags = ref_voc_eval(gt, det, k, t)
            idx = np.array(sorted(flags), dtype=np.int64)
            assert m.tp[idx, ti].tolist() == [flags[i] for i in idx]
            np.testing.assert_allclose(ours["voc"].recall[ti][k], rec, rtol=0, atol=1e-12)
            np.testing.assert_allclose(ours["voc"].precision[ti][k], prec, rtol=0, atol=1e-12)
            ref_ap["voc07"][ti, k] = ref_voc_ap(rec, prec, True)
            ref_ap["voc"][ti, k] = ref_voc_ap(rec, prec, False)
    assert (n_gt > 0).sum() >= 15
    for interp in ("voc07", "voc"):
        assert np.array_equal(np.isnan(ours[interp].ap), np.isnan(ref_ap[interp]))
        assert np.nanmax(np.abs(ours[interp].ap - ref_ap[interp])) <= 1e-9
        ref_map_per_iou = np.nanmean(ref_ap[interp], axis=1)
        assert np.max(np.abs(ours[interp].map_per_iou - ref_map_per_iou)) <= 1e-9
        assert abs(ours[interp].mAP - ref_map_per_iou.mean()) <= 1e-9
    # The case must exercise the hard parts: contested ground truth, ties in score, zero-area boxes.
    assert (m.best_gt >= 0).sum() > m.tp[:, 0].sum() + 100
    assert len(np.unique(det.score)) < len(det) // 10 and (det.area == 0).sum() > 5


def test_a_reused_match_gives_the_same_ap_and_a_foreign_one_is_refused(dior_gt):
    det = synth_detections(dior_gt, 4, int(dior_gt.image.max()) + 1)
    shared = voc_match(dior_gt, det)
    score_first = np.lexsort((-det.score, det.class_id))  # the visiting order's definition
    assert np.array_equal(shared.order, score_first)
    for interp in ("voc07", "voc"):
        for iou in (0.1, SEED_IOUS):
            fresh, reused = evaluate(dior_gt, det, K, iou, interp), evaluate(dior_gt, det, K, iou, interp, match=shared)
            assert np.array_equal(fresh.ap, reused.ap, equal_nan=True) and fresh.mAP == reused.mAP
    with pytest.raises(ValueError, match="detections"):
        evaluate(dior_gt, det[np.arange(10)], K, 0.5, "voc", match=shared)


def test_matching_is_independent_of_chunk_size(dior_gt, monkeypatch):
    import surgery_core.eval.matching as matching

    det = synth_detections(dior_gt, 3, int(dior_gt.image.max()) + 1)
    whole = match(dior_gt, det, SEED_IOUS)
    monkeypatch.setattr(matching, "_PAIR_CHUNK", 37)
    chunked = match(dior_gt, det, SEED_IOUS)
    assert np.array_equal(whole.tp, chunked.tp)
    assert np.array_equal(whole.best_gt, chunked.best_gt)
    assert np.array_equal(whole.best_iou, chunked.best_iou)


# ----------------------------------------------------------------------------------------------------
# (c) COCO equality with pycocotools on real DIOR boxes
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,ious", [(0, None), (1, SEED_IOUS)])
def test_coco_matches_pycocotools_on_dior(dior_gt, seed, ious):
    gt = dior_gt
    det = synth_detections(gt, seed, int(gt.image.max()) + 1)
    ours = evaluate(gt, det, K, ious, "coco")
    ref = pycocotools_eval(gt, det, ious)
    assert abs(ours.mAP - ref.stats[0]) <= 1e-9
    prec = ref.eval["precision"][:, :, :, 0, -1]   # [T, R, K], area "all", maxDets 100
    assert prec.shape[0] == len(ours.iou_thresholds)
    for t in range(prec.shape[0]):
        for k in range(K):
            if (prec[t, :, k] > -1).all():
                assert abs(ours.ap[t, k] - prec[t, :, k].mean()) <= 1e-9
                np.testing.assert_allclose(ours.precision[t][k], prec[t, :, k], rtol=0, atol=1e-12)
            else:
                assert math.isnan(ours.ap[t, k]) and ours.n_gt[k] == 0
    if ious is None:
        assert abs(ours.map_per_iou[0] - ref.stats[1]) <= 1e-9     # AP50
        assert abs(ours.map_per_iou[5] - ref.stats[2]) <= 1e-9     # AP75


# ----------------------------------------------------------------------------------------------------
# (d) edge cases
# ----------------------------------------------------------------------------------------------------

def test_zero_area_boxes_give_zero_iou_without_warnings():
    a = np.array([[5, 5, 5, 5], [0, 0, 10, 0], [0, 0, 10, 10]], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = box_iou(a, a)
        p = paired_iou(a, a)
        gt = Detections(a, np.ones(3), [0, 0, 0], [0, 0, 0])
        det = Detections(a, [0.5, 0.4, 0.9], [0, 0, 0], [0, 0, 0])
        r = evaluate(gt, det, 1, 0.5, "voc")
        rc = evaluate(gt, det, 1, 0.5, "coco")
    np.testing.assert_array_equal(m, [[0, 0, 0], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(p, [0, 0, 1])
    # Only the real box (highest score) is found: recall 1/3 at precision 1.
    assert r.ap[0, 0] == pytest.approx(1 / 3)
    assert rc.ap[0, 0] == pytest.approx(34 / 101)


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 10, 10], [-5, -5, 20, 20]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1, 100 / 625]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


@pytest.mark.parametrize("interp", ["voc07", "voc", "coco"])
def test_empty_detections_and_images_without_detections(interp):
    gt = Detections([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], [0, 0], [0, 1])
    r = evaluate(gt, Detections.empty(), 2, None, interp)
    assert (r.ap[:, 0] == 0).all() and np.isnan(r.ap[:, 1]).all() and r.mAP == 0
    # Only image 0 gets a (perfect) detection: recall stops at 1/2.
    det = Detections([[0, 0, 10, 10]], [0.3], [0], [0])
    r = evaluate(gt, det, 2, 0.5, interp)
    expected = {"voc07": 6 / 11, "voc": 0.5, "coco": 51 / 101}[interp]
    assert r.ap[0, 0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("interp", ["voc07", "voc", "coco"])
def test_no_ground_truth_at_all(interp):
    det = Detections([[0, 0, 10, 10]], [0.3], [1], [0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for d in (det, Detections.empty()):
            r = evaluate(Detections.empty(), d, 2, None, interp)
            assert np.isnan(r.ap).all() and math.isnan(r.mAP)
            assert np.isnan(r.map_per_iou).all()
            json.dumps(r.to_dict(["a", "b"]), allow_nan=False)


@pytest.mark.parametrize("interp", ["voc07", "voc", "coco"])
def test_class_without_gt_but_with_detections_is_left_out(interp):
    gt = Detections([[0, 0, 10, 10]], [1], [0], [0])
    det = Detections([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.9], [0, 1], [0, 0])
    r = evaluate(gt, det, 2, 0.5, interp)
    assert r.ap[0, 0] == pytest.approx(1.0) and math.isnan(r.ap[0, 1]) and r.mAP == pytest.approx(1.0)
    assert r.n_det.tolist() == [1, 1]


def test_to_dict_is_strict_json():
    gt, det = _small_case()
    for interp in ("voc07", "voc", "coco"):
        d = evaluate(gt, det, 3, None, interp).to_dict(["a", "b", "c"], curves=True)
        text = json.dumps(d, allow_nan=False)
        back = json.loads(text)
        assert back["per_class"]["c"]["AP"] is None and back["per_class"]["b"]["AP"] == 0.0
        assert back["interp"] == interp and back["n_classes_with_gt"] == 2
        assert set(back["per_class"]["a"]["curves"]) == set(back["mAP_per_iou"])
    with pytest.raises(ValueError):
        evaluate(gt, det, 3).to_dict(["a"])


def test_invalid_arguments():
    gt, det = _small_case()
    with pytest.raises(ValueError):
        evaluate(gt, det, 3, 0.5, "voc2012")
    with pytest.raises(ValueError):
        evaluate(gt, det, 3, 0.0, "voc")
    with pytest.raises(ValueError):
        evaluate(gt, det, 3, [0.5, 1.5], "coco")
    with pytest.raises(ValueError):
        evaluate(gt, det, 1, 0.5, "voc")      # ground truth has class id 1
    bad = Detections(det.xyxy, [np.nan, 1, 1, 1], det.class_id, det.image)
    with pytest.raises(ValueError):
        evaluate(gt, bad, 3, 0.5, "voc")
