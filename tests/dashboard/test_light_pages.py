"""Pages that draw less in the browser (issue 27.1) without losing anything: precision-recall curves drawn
through their step corners only (the same lines), one class's curves by default and every class's on demand,
small tables as plain HTML with the same values."""

from __future__ import annotations

import numpy as np
import pytest
from tests.dashboard.test_dashboard import app, goto, ok, tables

from dashboard.charts import step_corners


def drawn(x, y) -> tuple[dict, dict]:
    """What plotly draws for ``shape="hv"`` through the points (x, y): per y, the union of its horizontal
    stretches; per x, the union of its vertical stretches (each a sorted list of disjoint closed intervals)."""
    flat, upright = {}, {}
    for i in range(len(x) - 1):
        flat.setdefault(y[i], []).append((x[i], x[i + 1]))
        upright.setdefault(x[i + 1], []).append(tuple(sorted((y[i], y[i + 1]))))

    def union(spans):
        out = []
        for a, b in sorted(spans):
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return [s for s in out if s[1] > s[0]] or out[:1]  # a lone point stays (a curve of one detection)

    return ({k: union(v) for k, v in flat.items() if union(v) and union(v)[0][1] > union(v)[0][0]},
            {k: union(v) for k, v in upright.items() if union(v) and union(v)[0][1] > union(v)[0][0]})


def pr_curve(rng, n_det: int, n_gt: int):
    """A VOC-style raw curve: recall and precision after each detection in descending score order."""
    tp = rng.random(n_det) < rng.uniform(0.05, 0.9)
    tp_c, fp_c = np.cumsum(tp), np.cumsum(~tp)
    return tp_c / n_gt, tp_c / np.maximum(tp_c + fp_c, np.finfo(float).eps)


@pytest.mark.parametrize("seed", range(40))
def test_step_corners_keep_the_drawn_curve_exactly(seed):
    rng = np.random.default_rng(seed)
    if seed % 4 == 3:  # any step curve: repeated x and y, steps up and down, plateaus
        x = np.sort(rng.integers(0, 6, rng.integers(1, 60))) / 5
        y = rng.integers(0, 4, len(x)) / 3
    else:
        x, y = pr_curve(rng, int(rng.integers(1, 400)), int(rng.integers(1, 50)))
    at = step_corners(x, y)
    assert at[0] == 0 and at[-1] == len(x) - 1 and np.all(np.diff(at) > 0)
    assert drawn(x[at], y[at]) == drawn(x, y)


def test_step_corners_drop_stacked_false_positives():
    # 1 TP, 5 FPs at the same recall, 1 TP, 3 FPs: the corners are the TPs and the last FP of each stack
    tp = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0], bool)
    rec, prec = np.cumsum(tp) / 4, np.cumsum(tp) / np.arange(1, 11)
    assert step_corners(rec, prec).tolist() == [0, 5, 6, 9]
    assert step_corners(rec[:2], prec[:2]).tolist() == [0, 1]


def values(v) -> np.ndarray:
    """An array of a plotly figure's JSON: a list, or plotly's typed array (base64 bytes and a dtype)."""
    import base64

    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
    return np.asarray(v, float)


def pr_figure(at) -> dict:
    import json

    return json.loads(next(c for c in at.get("plotly_chart") if '"recall"' in c.proto.spec).proto.spec)


def test_pr_curves_of_one_class_by_default_every_class_on_demand(dashboard_env, test_run):
    at = goto(app(), "ap")
    ok(at)
    box = at.selectbox(key="prc")
    name = box.value  # the first class with GT; the last option: every class
    assert box.options[0].startswith(f"{name} (GT ") and box.options[-1].startswith("all ")
    fig = pr_figure(at)
    assert [a["text"] for a in fig["layout"]["annotations"]] == [box.options[0]]  # one panel
    captions = "\n".join(c.value for c in at.caption)
    assert f"class {name}" in captions and "every corner of the step curve" in captions
    k = test_run.classes.index(name)
    p, iou = float(at.select_slider(key="p").value), float(at.select_slider(key="iou").value)
    assert fig["data"]
    for t in fig["data"]:  # the corners of the library's curve, nothing else
        res = test_run.ap(t["name"], "present", "voc07", p, iou)
        rec, prec = res.recall[0][k], res.precision[0][k]
        idx = step_corners(rec, prec)
        assert np.array_equal(values(t["x"]), rec[idx]) and np.array_equal(values(t["y"]), prec[idx])
    at.selectbox(key="prc").set_value("*").run()
    ok(at)
    every = pr_figure(at)
    assert [a["text"] for a in every["layout"]["annotations"]] == list(box.options[:-1])  # a panel per class
    assert len(box.options) > 2 and {t["name"] for t in every["data"]} == {t["name"] for t in fig["data"]}
    assert at.query_params["prc"] == "*"


def test_small_tables_are_plain_html_with_the_values(dashboard_env, test_run):
    at = goto(app(), "quality")
    ok(at)
    assert len(at.table) == 5 and not at.dataframe  # every table of the page is small
    corloc = next(t.value for t in tables(at) if "IoU 0.5" in t.value.columns)
    assert len(corloc)
    for _, row in corloc.iterrows():
        want = test_run.corloc().entry(row["method"], row["protocol"]).corloc["0.5"]
        assert row["IoU 0.5"] == pytest.approx(want, nan_ok=True)


def test_per_class_ap_rows_sort_by_a_method_mAP_row_last(dashboard_env, test_run):
    at = goto(app(), "ap")
    ok(at)
    before = tables(at)[0].value
    assert not at.dataframe and at.selectbox(key="ap_sort").value == "class"
    assert list(before["class"][:-1]) == [c for c in test_run.classes if c in set(before["class"])]  # DIOR order
    at.selectbox(key="ap_sort").set_value("vv_mixed").run()
    ok(at)
    after = tables(at)[0].value
    assert after["class"].iloc[-1] == "mAP" and sorted(after["class"]) == sorted(before["class"])
    ap = after["vv_mixed"].iloc[:-1].to_numpy(float)
    defined = ap[~np.isnan(ap)]
    assert np.all(np.diff(defined) <= 0) and not np.isnan(ap[: len(defined)]).any()  # best first, undefined last
    assert after.set_index("class").loc[before["class"]].reset_index().equals(before)  # the same rows
    assert at.query_params["ap_sort"] == "vv_mixed"
