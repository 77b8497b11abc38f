"""The seed's views as :mod:`surgery_core.share.drawing` draws them for the report, the shared HTML and the dashboard:
checked on pixels (where boxes, labels, the point and the heatmap land, and in which colour)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgery_core.share import drawing
from surgery_core.share.drawing import GREEN, RED


def grey(h=200, w=300, v=128) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def is_colour(px, colour, tol=40) -> bool:
    return bool(np.abs(px.astype(int) - np.asarray(colour)).max() <= tol)


def test_fit_scales_the_longer_side():
    img, s = drawing.fit(grey(200, 300), 150)
    assert img.shape == (100, 150, 3) and s == pytest.approx(0.5)
    img, s = drawing.fit(grey(200, 300), None)
    assert img.shape == (200, 300, 3) and s == 1.0


def test_overlay_is_jet_blended_with_the_given_opacity():
    image = grey()
    m = np.zeros((4, 6), np.float32)
    m[0, 0] = 1.0  # hot corner, cold elsewhere
    np.testing.assert_array_equal(drawing.overlay(image, m, 0.0), image)
    full = drawing.overlay(image, m, 1.0)
    assert full[0, 0, 0] > 100 and full[0, 0, 2] < 30  # jet: high is (dark) red
    assert full[-1, -1, 2] > 100 and full[-1, -1, 0] < 30  # low is (dark) blue
    half = drawing.overlay(image, m, 0.5).astype(int)
    assert np.abs(half - (full.astype(int) + 128) / 2).max() <= 1


def test_gt_solid_predictions_dashed_with_labels():
    img = grey()
    drawing.draw_boxes(img, np.array([[50, 60, 150, 160]]), GREEN)
    top = img[60, 50:150]
    assert all(is_colour(px, GREEN) for px in top[2:-2])  # solid edge
    assert is_colour(img[110, 100], (128, 128, 128), 0)  # inside untouched
    img = grey()
    drawing.draw_boxes(img, np.array([[50, 60, 250, 160]]), RED, dashed=True, labels=[".62 .41 TP"])
    edge = [is_colour(px, RED) for px in img[160 - 1, 55:245]]
    assert any(edge) and not all(edge)  # dashes and gaps along the bottom edge
    label = img[40:59, 50:120]  # the label sits above the box: a red fill with white text
    assert (np.abs(label.astype(int) - RED).max(axis=2) <= 40).sum() > 300
    assert (label.min(axis=2) > 200).sum() > 20


def test_boxes_are_scaled_to_the_display_size():
    img, s = drawing.fit(grey(400, 600), 300)
    drawing.draw_boxes(img, np.array([[100, 100, 300, 300]]), GREEN, scale=s)
    assert is_colour(img[50, 100], GREEN) and is_colour(img[100, 50], GREEN)
    assert not is_colour(img[100, 100], GREEN)


@pytest.mark.parametrize("hit,ring", [(True, GREEN), (False, RED), (None, (255, 255, 255))])
def test_pointing_point_ring_colour(hit, ring):
    img = grey(320, 320)
    drawing.draw_point(img, (100, 100), hit)
    r = max(5, 320 // 32)
    assert any(is_colour(img[y, 100], ring, 40) for y in range(100 - r - 2, 100 - r + 3))  # the ring above it


def test_det_labels():
    s, i, t = np.array([0.625, 1.0]), np.array([0.41, 0.0]), np.array([True, False])
    assert drawing.det_labels(s, i, t) == ["s.62 IoU.41 TP", "s1.00 IoU.00 FP"]
    assert drawing.det_labels(s, i, t, compact=False) == ["0.62 IoU 0.41 TP", "1.00 IoU 0.00 FP"]


def test_small_scores_keep_two_significant_digits():
    """Open-protocol scores are a map mean times a class probability: 0.0034 must not read .00."""
    assert [drawing.score_text(v) for v in (0.59, 0.1, 0.034, 0.0034, 0.00012, 1.2e-5, 0.0)] == \
        ["0.59", "0.10", "0.034", "0.0034", "0.00012", "1.2e-05", "0.00"]
    assert drawing.det_labels([0.0034, 0.0021], [0.5, 0.2], [True, False]) == ["s.0034 IoU.50 TP", "s.0021 IoU.20 FP"]


def test_labels_never_cover_each_other():
    """Nested boxes at a low percentile: every label lands on its own spot (or is left out), never on another."""
    img = grey(300, 300, 0)
    boxes = np.array([[50, 50, 250, 250], [52, 52, 240, 240], [54, 54, 230, 230], [56, 56, 220, 220]], float)
    labels = [f"s.{k}0 IoU.{k}0 FP" for k in range(1, 5)]
    taken: list = []
    font = drawing.label_scale(img)
    drawn = [drawing._label(img, t, int(x1), int(y1), int(y2), RED, font, taken) for t, (x1, y1, _, y2)
             in zip(labels, boxes)]
    assert sum(drawn) == len(taken) >= 3
    for a in range(len(taken)):
        for b in range(a + 1, len(taken)):
            ra, rb = taken[a], taken[b]
            assert not (ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]), (ra, rb)
    assert all(0 <= r[1] and r[3] <= 300 for r in taken)


def test_colour_strip_runs_through_jet_with_ticks():
    bar = drawing.colour_strip(400, title="heatmap value", tick_labels=("0", "0.25", "0.5", "0.75", "1"))
    assert bar.shape[1] == 400 and bar.dtype == np.uint8
    strip = next(y for y in range(bar.shape[0]) if is_colour(bar[y, 200], drawing.jet(np.array([[0.5]]))[0, 0], 30))
    assert is_colour(bar[strip + 2, 10], drawing.jet(np.zeros((1, 1)))[0, 0], 40)  # blue at 0, left
    assert is_colour(bar[strip + 2, 389], drawing.jet(np.ones((1, 1)))[0, 0], 40)  # dark red at 1, right
    assert (bar[-8:, :, 0] < 100).any()  # tick labels drawn under the strip


def test_method_view_draws_every_layer():
    image = grey(400, 400)
    m = np.zeros((8, 8), np.float32)
    gt, det = np.array([[40, 40, 200, 200]]), np.array([[220, 220, 380, 380]])
    view = drawing.method_view(image, m, gt, det, [".50 .00 FP"], (300, 100), False, 0.5, side=200)
    assert view.shape == (200, 200, 3)
    assert is_colour(view[20, 60], GREEN)  # GT at half scale
    assert any(is_colour(px, RED) for px in view[110, 112:188])  # a dash of the prediction's top edge
    assert int(view[150, 50, 2]) > int(view[150, 50, 0]) + 40  # cold map: blue tint
    r = max(5, 200 // 32)
    assert any(is_colour(view[y, 150], RED, 40) for y in range(50 - r - 2, 50 - r + 3))  # miss ring at (300, 100) / 2
    bare = drawing.method_view(image, m, gt, det, alpha=0.0, side=200)
    assert is_colour(bare[150, 50], (128, 128, 128), 0)  # no heatmap at opacity 0


def test_gt_view_other_classes_white():
    view = drawing.gt_view(grey(), np.array([[10, 10, 100, 100]]), np.array([[150, 20, 280, 180]]))
    assert is_colour(view[10, 50], GREEN) and is_colour(view[20, 200], drawing.OTHER)


def test_three_column_layout():
    image = grey(120, 160)
    titles = ("00001: airplane, 1 GT box (green)", "vv_mixed: heatmap of 'airplane' (jet, min-max normalised)",
              "1 box at p90, 0 TP at IoU >= 0.1 (red dashed: score, IoU, TP/FP) and a title long enough to wrap")
    fig = drawing.three_column(image, np.array([[10, 30, 80, 100]]), np.ones((4, 4), np.float32),
                               np.array([[90, 30, 150, 100]]), ["0.90 IoU 0.00 FP"], titles)
    side = drawing.PANEL_MIN  # a 160 px image is drawn at 448 px: readable at the figure's own size
    ph, s = 336, side / 160  # panel height and scale
    head = max(drawing.title_bar(side, t).shape[0] for t in titles)
    bar_w = drawing.colour_bar(ph).shape[1]
    assert fig.shape == (head + ph, 3 * side + bar_w + 2 * 10, 3)
    left, mid = fig[head:, :side], fig[head:, side + 10:2 * side + 10]
    right = fig[head:, 2 * side + bar_w + 20:]
    assert is_colour(left[round(30 * s), round(40 * s)], GREEN)
    assert not any(is_colour(px, RED) for px in left[round(30 * s), round(95 * s):round(145 * s)])
    assert int(mid[ph // 2, side // 2, 0]) > int(mid[ph // 2, side // 2, 2]) + 40  # hot map everywhere: red tint
    assert is_colour(right[round(30 * s), round(40 * s)], GREEN)
    assert any(is_colour(px, RED) for px in right[round(100 * s) - 1, round(92 * s):round(148 * s)])
    scale = fig[head:, 2 * side + 10:2 * side + 10 + bar_w]  # the colour bar: jet, red on top, blue below
    col = scale[:, 10 + 9]
    assert col[12, 0] > 100 and col[12, 2] < 60 and col[ph - 13, 2] > 100 and col[ph - 13, 0] < 60


def test_titles_wrap_instead_of_being_cut():
    text = "boxes at p90, IoU 0.1 (sorted by score; labels: score, IoU with the best GT box, TP or FP)"
    lines = drawing._wrap(text, 200, drawing.TITLE_SCALE)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(cv2.getTextSize(x, drawing.FONT, drawing.TITLE_SCALE, 1)[0][0] <= 200 for x in lines)
    assert drawing.title_bar(200, text).shape[0] > drawing.title_bar(200, "short").shape[0]


@pytest.mark.parametrize("methods,rows,cols", [(4, 1, 5), (10, 3, 4)])
def test_comparison_puts_every_method_beside_the_image(methods, rows, cols):
    image = grey(224, 224)
    hot = np.zeros((7, 7), np.float32)
    hot[3, 3] = 1.0
    panels = [{"title": f"m{k}: 1 box", "map01": hot, "det_xyxy": np.array([[90.0, 90, 130, 130]]),
               "labels": ["0.90 IoU 0.50 TP"], "point": (112, 112), "hit": True} for k in range(methods)]
    fig = drawing.comparison(image, np.array([[80, 80, 140, 140]]), np.array([[5, 5, 40, 40]]), "image", panels,
                             heading="image 1, class airplane")
    side = drawing.PANEL_MIN
    head = drawing.title_bar(fig.shape[1], "image 1, class airplane", bold=True).shape[0]
    tile_h = drawing.title_bar(side, "m0: 1 box").shape[0] + side
    bar_w = drawing.colour_bar(side).shape[1]
    assert fig.shape == (head + rows * tile_h + (rows - 1) * 10, cols * side + cols * 10 + bar_w, 3)
    for k in range(1, methods + 1):  # every method panel: heatmap hot in the centre, blue at the corner
        r, c = divmod(k, cols)
        y0, x0 = head + r * (tile_h + 10) + tile_h - side, c * (side + 10)
        tile = fig[y0:y0 + side, x0:x0 + side]
        assert tile[side - 5, side - 5, 2] > tile[side - 5, side - 5, 0] + 40, k
    original = fig[head + tile_h - side:head + tile_h, :side]
    assert is_colour(original[side - 5, side - 5], (128, 128, 128), 5)  # the first tile: no heatmap


def test_encoders_round_trip():
    img = drawing.method_view(grey(), np.random.default_rng(0).random((7, 7)).astype(np.float32),
                              np.array([[10, 10, 90, 90]]), np.zeros((0, 4)))
    png = cv2.cvtColor(cv2.imdecode(np.frombuffer(drawing.encode_png(img, 6), np.uint8), 1), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(png, img)
    jpg = cv2.cvtColor(cv2.imdecode(np.frombuffer(drawing.encode_jpg(img), np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert np.abs(jpg.astype(int) - img).mean() < 3
