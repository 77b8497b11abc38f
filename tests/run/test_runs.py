"""Runs side by side (issue 23): the store listed from its files, the leaderboard's numbers against each run's own
pages, cross-run comparison on shared images, the ground-truth check, labels, deletion under a concurrent reader,
and the ``surgery runs`` / ``surgery report --runs`` commands.

Two demo runs that differ in one setting (surgery depth 6 and 2, the first 4 test scenes), the 5 real DIOR samples,
a copy of the samples with one box moved, and a 2-scene run for a partial overlap, in a store of their own.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SAMPLES, environ

from surgery_core.errors import SurgeryError
from surgery_core.eval.ap import COCO_IOUS
from surgery_core.run import stored
from surgery_core.run.config import DataConfig, RunConfig
from surgery_core.run.facade import Run
from surgery_core.run.store import RunStore
from surgery_core.share import crossrun

METHODS = ("standard", "vv_mixed")
LIMIT = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with the runs (AP tables and quality computed, except ``lazy``) and the environment pointing at it."""
    base = tmp_path_factory.mktemp("runs")
    env = {"SURGERY_CACHE": str(base / "cache"), "SURGERY_STORE": str(base / "store")}
    moved = base / "samples-moved"
    shutil.copytree(SAMPLES, moved)
    xml = moved / "Annotations" / "Horizontal Bounding Boxes" / "06486.xml"
    text = xml.read_text()
    first = text.index("<xmin>") + len("<xmin>")
    end = text.index("</xmin>", first)
    xml.write_text(text[:first] + str(int(text[first:end]) + 7) + text[end:])  # one box 7 px to the right
    with environ(env):
        store = RunStore(env["SURGERY_STORE"])
        demo = DataConfig(limit=LIMIT)
        cfgs = {"d6": RunConfig(data=demo, methods=METHODS),
                "d2": RunConfig(data=demo, methods=METHODS, surgery_depth=2),
                "samples": RunConfig(data=DataConfig(kind="samples"), methods=METHODS),
                "moved": RunConfig(data=DataConfig(kind="samples", root=str(moved)), methods=METHODS),
                "two": RunConfig(data=DataConfig(limit=2), methods=METHODS),
                "lazy": RunConfig(data=demo, methods=METHODS,
                                  boxes=RunConfig().boxes.model_copy(update={"percentile": 75.0}))}
        runs = {k: Run.open(c, store) for k, c in cfgs.items()}
        for k in ("d6", "d2", "samples"):
            runs[k].ap_tables(), runs[k].quality(), runs[k].corloc()
        yield {"store": store, "runs": runs, "env": env}


def row_of(rows: list[dict], run: Run, method: str) -> dict:
    hits = [r for r in rows if r["folder"] == run.run_dir.name and r["method"] == method]
    assert len(hits) == 1, (run.run_dir.name, method)
    return hits[0]


# ------------------------------------------------------------------------------------------ the leaderboard
def test_the_leaderboard_equals_each_runs_own_pages(world):
    """Every headline number equals the one the run's Per-class AP page shows (``run.ap`` with the page's protocol,
    interpolation and IoU; COCO AP@[.50:.95] as its toggle computes it) and the Heatmap quality page's pointing
    games (over pairs), for both demo runs and the real samples."""
    rows = stored.leaderboard(world["store"])
    for key in ("d6", "d2", "samples"):
        run = world["runs"][key]
        p = run.cfg.boxes.cut
        q = run.quality().methods
        for m in METHODS:
            row = row_of(rows, run, m)
            assert row[stored.NOT_COMPUTED] == ""
            for proto in ("present", "open"):
                for iou in (0.5, 0.1):
                    page = run.ap(m, proto, "voc07", p, iou).mAP
                    assert row[f"VOC07@{iou:g} {proto}"] == pytest.approx(page, abs=1e-12), (key, m, proto, iou)
                coco = run.ap(m, proto, "coco", p, COCO_IOUS).mAP
                assert row[f"COCO .50:.95 {proto}"] == pytest.approx(coco, abs=1e-12)
            corloc = run.corloc_at(m, "present", p, 0.5).mean[0]  # the Per-class AP page's CorLoc at IoU 0.5
            assert row["CorLoc@0.5 present"] == pytest.approx(corloc, abs=1e-12)
            assert row["pointing game"] == q[m].pointing_game["overall"]
            assert row["energy PG"] == q[m].energy_pointing_game["overall"]
            assert row["depth"] == run.cfg.surgery_depth and row["images"] == len(run.grids.rows)
    assert {row_of(rows, world["runs"]["d6"], "vv_mixed")["VOC07@0.1 present"],
            row_of(rows, world["runs"]["d2"], "vv_mixed")["VOC07@0.1 present"]} != {None}
    assert "DIOR samples" in row_of(rows, world["runs"]["samples"], "standard")["dataset"]


def test_listing_computes_nothing_and_compute_fills_the_gaps(world):
    store, lazy = world["store"], world["runs"]["lazy"]
    before = sorted(p.name for p in lazy.run_dir.iterdir())
    rows = stored.leaderboard(store)
    row = row_of(rows, lazy, "vv_mixed")
    assert row[stored.NOT_COMPUTED] == "ap tables, quality, corloc" and row["VOC07@0.5 present"] is None
    assert sorted(p.name for p in lazy.run_dir.iterdir()) == before, "listing the store wrote files"
    steps = []
    todo = [r for r in stored.list_stored(store) if r.name == lazy.run_dir.name]
    stored.compute_missing(store, todo, progress=lambda d, t, what: steps.append((d, t)))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    row = row_of(stored.leaderboard(store), lazy, "vv_mixed")
    assert row[stored.NOT_COMPUTED] == ""
    assert row["VOC07@0.5 present"] == pytest.approx(lazy.ap("vv_mixed", "present", "voc07", 75.0, 0.5).mAP, abs=1e-12)


# ------------------------------------------------------------------------------------------ comparing
def test_comparison_differences_are_the_difference_of_the_runs_tables(world):
    d6, d2 = world["runs"]["d6"], world["runs"]["d2"]
    pairs = [crossrun.Pair(d6, "vv_mixed", "depth 6"), crossrun.Pair(d2, "vv_mixed", "depth 2")]
    pairing = crossrun.pairing_for(pairs)
    assert pairing.n == LIMIT and pairing.gt_problem is None
    assert crossrun.differences_text([d6, d2]) == "surgery_depth 6 / 2"
    for proto, interp, iou in (("present", "voc07", 0.1), ("open", "voc", 0.5), ("present", "coco", 0.5)):
        table = crossrun.compare_table(pairs, pairing, proto, interp, iou)
        a, b = (r.ap("vv_mixed", proto, interp, 90.0, iou) for r in (d6, d2))
        body = table[table["class"] != "mAP"]
        keep = a.n_gt > 0
        np.testing.assert_array_equal(body["GT"], a.n_gt[keep])
        np.testing.assert_allclose(body["depth 6 · vv_mixed"], a.per_class_ap[keep], rtol=0, atol=1e-12)
        np.testing.assert_allclose(body["depth 2 · vv_mixed"], b.per_class_ap[keep], rtol=0, atol=1e-12)
        np.testing.assert_allclose(body["Δ depth 2 · vv_mixed"], b.per_class_ap[keep] - a.per_class_ap[keep],
                                   rtol=0, atol=1e-12)
        last = table.iloc[-1]
        assert last["class"] == "mAP" and last["Δ depth 2 · vv_mixed"] == pytest.approx(b.mAP - a.mAP, abs=1e-12)
    series = crossrun.sweep_series(pairs[0], pairing.index[0], d6.classes, "present", "voc07", 0.5)
    stored_sweep = d6.sweep_part("vv_mixed", "present")["voc07"]
    assert series[1] == [row[d6.cfg.iou_thresholds.index(0.5)] for row in stored_sweep.map]


def test_runs_are_compared_on_the_images_they_share(world):
    """A 2-scene run against the 4-scene one: compared on 2 images, and the 4-scene run's column then equals the
    2-scene run's own numbers (the same boxes on the same images); the sweep on the subset too."""
    d6, two = world["runs"]["d6"], world["runs"]["two"]
    pairs = [crossrun.Pair(d6, "standard"), crossrun.Pair(two, "standard")]
    pairing = crossrun.pairing_for(pairs)
    assert pairing.n == 2 and pairing.counts == [LIMIT, 2]
    assert pairing.summary() == "compared on 2 shared images"
    table = crossrun.compare_table(pairs, pairing, "present", "voc07", 0.1)
    own = two.ap("standard", "present", "voc07", 90.0, 0.1)
    body = table[table["class"] != "mAP"]
    np.testing.assert_allclose(body[f"{d6.run_hash} · standard"], own.per_class_ap[own.n_gt > 0], atol=1e-12)
    np.testing.assert_allclose(body[f"Δ {two.run_hash} · standard"], 0.0, atol=1e-12)
    xs, ys = crossrun.sweep_series(pairs[0], pairing.index[0], d6.classes, "present", "voc07", 0.1)
    xs2, ys2 = crossrun.sweep_series(pairs[1], pairing.index[1], two.classes, "present", "voc07", 0.1)
    assert xs == xs2 and ys == pytest.approx(ys2, abs=1e-12)


def test_different_ground_truth_is_refused_naming_the_first_difference(world):
    samples, moved = world["runs"]["samples"], world["runs"]["moved"]
    pairs = [crossrun.Pair(samples, "vv_mixed"), crossrun.Pair(moved, "vv_mixed")]
    pairing = crossrun.pairing_for(pairs)
    assert pairing.n == 5
    assert pairing.gt_problem is not None and pairing.gt_problem.startswith("image 06486: GT box")
    assert f"in run {samples.run_hash}" in pairing.gt_problem and f"in run {moved.run_hash}" in pairing.gt_problem
    with pytest.raises(SurgeryError, match="the ground truth differs .image 06486: GT box"):
        crossrun.compare_table(pairs, pairing, "present", "voc07", 0.5)
    picture = crossrun.cross_figure(pairs, pairing, "06486", samples.classes[int(
        samples.dataset.images[samples.dataset.index_of("06486")].labels[0])], 0.1)
    assert picture.ndim == 3 and picture.shape[2] == 3  # still shown as pictures
    same = crossrun.pairing_for([crossrun.Pair(samples, "standard"), crossrun.Pair(samples, "vv_mixed")])
    assert same.gt_problem is None and same.n == 5


def test_runs_without_a_shared_image_or_class_list(world):
    d6, samples = world["runs"]["d6"], world["runs"]["samples"]
    pairing = crossrun.pairing_for([crossrun.Pair(d6, "standard"), crossrun.Pair(samples, "standard")])
    assert pairing.n == 0
    assert pairing.gt_problem.startswith("the class lists differ")  # 8 demo classes against DIOR's 20
    with pytest.raises(SurgeryError, match="2 to 4"):
        crossrun.check_pairs([crossrun.Pair(d6, "standard")])
    with pytest.raises(SurgeryError, match="has no method 'gem'"):
        crossrun.check_pairs([crossrun.Pair(d6, "standard"), crossrun.Pair(samples, "gem")])


# ------------------------------------------------------------------------------------------ housekeeping
def test_labels_notes_and_hash_prefixes(world):
    store, d6 = world["store"], world["runs"]["d6"]
    sr = stored.resolve(store, d6.run_hash[:5])
    stored.set_label(sr, "Demo B/32 depth 6", "me: the baseline\nfor the table")
    again = stored.resolve(store, d6.run_hash)
    assert (again.label, again.note) == ("Demo B/32 depth 6", "me: the baseline\nfor the table")
    assert d6.label == "Demo B/32 depth 6" and d6.title() == f"{d6.run_hash} · Demo B/32 depth 6"
    assert row_of(stored.leaderboard(store), d6, "standard")["label"] == "Demo B/32 depth 6"
    from surgery_core.share.snapshots import view_state

    assert view_state(d6, "run")["run_label"] == "Demo B/32 depth 6"
    stored.set_label(again, note="")  # the label stays
    assert stored.resolve(store, d6.run_hash).label == "Demo B/32 depth 6"
    with pytest.raises(SurgeryError, match="at most 200 characters"):
        stored.set_label(again, "x" * 201)
    with pytest.raises(SurgeryError, match="no stored run matches 'zzzz'"):
        stored.resolve(store, "zzzz")
    twin = d6.run_dir.parent / f"{d6.run_hash}-00000000"
    shutil.copytree(d6.run_dir, twin)
    try:
        with pytest.raises(SurgeryError, match="matches 2 stored runs"):
            stored.resolve(store, d6.run_hash)
        assert stored.resolve(store, twin.name).name == twin.name  # a folder name is unique
    finally:
        shutil.rmtree(twin)


def test_delete_is_whole_or_nothing_for_a_concurrent_reader(world):
    """A reader listing the store in a loop while a run is deleted sees that run whole (its record, its label and
    both products) or not at all; a folder renamed under a reader is reported gone."""
    store, d6 = world["store"], world["runs"]["d6"]
    copy = d6.run_dir.parent / "ffffffffffff-00000000"
    shutil.copytree(d6.run_dir, copy)
    (copy / stored.LABEL_FILE).write_text(json.dumps({"label": "to delete", "note": ""}))
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            for r in stored.list_stored(store):
                if r.name == copy.name:
                    seen.append((r.label, dict(r.products), r.record.get("run_hash")))
            seen.append(None)

    t = threading.Thread(target=reader)
    t.start()
    try:
        while not any(s is not None for s in seen):
            pass
        stored.delete_run(store, stored.resolve(store, copy.name))
        n = len(seen)
        while len(seen) < n + 3:
            pass
    finally:
        stop.set()
        t.join()
    whole = [s for s in seen if s is not None]
    assert whole and all(s == ("to delete", {"ap_tables": True, "quality": True, "corloc": True}, d6.run_hash)
                         for s in whole)
    assert seen[-1] is None and seen[-2] is None  # gone after the delete
    assert not copy.exists() and not [p for p in copy.parent.iterdir() if p.name.startswith(stored.TOMBSTONE)]
    with pytest.raises(SurgeryError, match="no stored run matches"):
        stored.resolve(store, copy.name)
    # a reader that stat-ed the folder before it was renamed away reports it gone
    mover = d6.run_dir.parent / "eeeeeeeeeeee-00000000"
    shutil.copytree(d6.run_dir, mover)
    real_read = stored._read_json

    def read_then_rename(path):
        doc = real_read(path)
        if path.name == "quality.json" and mover.exists():
            mover.rename(mover.parent / ".deleted-test")
        return doc

    stored._read_json = read_then_rename
    try:
        assert stored.read_run(mover) is None
    finally:
        stored._read_json = real_read
        shutil.rmtree(mover.parent / ".deleted-test")
    assert stored.folder_size(d6.run_dir) > 0 and stored.grid_size(store, stored.resolve(store, d6.run_hash)) > 0


# ------------------------------------------------------------------------------------------ the command line
def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from surgery_core.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_runs_compare_label_rm_and_report(world, capsys, tmp_path):
    store, d6, d2 = world["store"], world["runs"]["d6"], world["runs"]["d2"]
    root = ["--store", str(store.root)]
    code, out, _ = cli(["runs", *root, "--json", "--method", "vv_mixed"], capsys)
    doc = json.loads(out)
    assert code == 0 and {r["method"] for r in doc["rows"]} == {"vv_mixed"}
    assert row_of(doc["rows"], d2, "vv_mixed")["VOC07@0.1 present"] == pytest.approx(
        d2.ap("vv_mixed", "present", "voc07", 90.0, 0.1).mAP, abs=1e-12)
    code, out, _ = cli(["runs", *root, "--csv"], capsys)
    assert code == 0 and out.splitlines()[0].startswith("label,run,dataset")
    code, out, _ = cli(["runs", *root], capsys)
    assert code == 0 and "VOC07@0.5 present" in out and d6.run_hash in out

    code, out, _ = cli(["runs", "label", d2.run_hash[:6], "depth 2", "--note", "ablation", *root], capsys)
    assert code == 0 and "label 'depth 2'" in out

    out_dir = tmp_path / "cmp"
    code, out, err = cli(["runs", "compare", d6.run_hash[:6], d2.run_hash[:6], "--methods", "vv_mixed",
                          "--iou", "0.1", "--samples", "2", "--out", str(out_dir), *root], capsys)
    assert code == 0, err
    assert f"compared on {LIMIT} shared images" in out
    import pandas as pd

    csv = pd.read_csv(out_dir / "per_class.csv")
    table = crossrun.compare_table([crossrun.Pair(d6, "vv_mixed", d6.label), crossrun.Pair(d2, "vv_mixed", "depth 2")],
                                   crossrun.pairing_for([crossrun.Pair(d6, "vv_mixed"), crossrun.Pair(d2, "vv_mixed")]),
                                   "present", "voc07", 0.1)
    np.testing.assert_allclose(csv[table.columns[-1]], table[table.columns[-1]], atol=1e-12)
    assert (csv["shared_images"] == LIMIT).all()
    md = (out_dir / "comparison.md").read_text()
    assert f"compared on {LIMIT} shared images" in md and "depth 2 · vv_mixed" in md
    assert len(list((out_dir / "figures").glob("*.png"))) == 2

    samples, moved = world["runs"]["samples"], world["runs"]["moved"]
    code, out, err = cli(["runs", "compare", samples.run_hash, moved.run_hash, "--out", str(tmp_path / "gt"),
                          "--samples", "1", *root], capsys)
    assert code == 0 and "no per-class table, the ground truth differs (image 06486" in err
    assert not (tmp_path / "gt" / "per_class.csv").exists()
    assert "**Refused.**" in (tmp_path / "gt" / "comparison.md").read_text()
    assert len(list((tmp_path / "gt" / "figures").glob("*.png"))) == 1

    html = tmp_path / "runs.html"
    code, out, err = cli(["report", "--runs", f"{d6.run_hash},{d2.run_hash}", "--out", str(html),
                          "--samples-count", "1", *root], capsys)
    assert code == 0, err
    text = html.read_text()
    assert f"compared on {LIMIT} shared images" in text and "depth 2 · vv_mixed" in text
    assert "surgery-runs-sweep" in text and "data:image/png;base64," in text and "src=\"http" not in text

    code, _, err = cli(["runs", "compare", d6.run_hash, "--out", str(tmp_path / "x"), *root], capsys)
    assert code == 2 and "compare 2 to 4 runs" in err
    code, _, err = cli(["runs", "compare", d6.run_hash, d2.run_hash, "--protocol", "both", "--out",
                        str(tmp_path / "x"), *root], capsys)
    assert code == 2 and "--protocol both: not scored by every run" in err

    code, _, err = cli(["runs", "rm", d2.run_hash, *root], capsys)  # stdin is not a terminal: no silent delete
    assert code == 2 and "needs a confirmation: pass --yes" in err and d2.run_dir.is_dir()


# ------------------------------------------------------------------------------------------ the page
def test_the_runs_page_shows_the_same_numbers_and_computes_nothing(world):
    """The Runs page (AppTest): each headline cell is the run's own number as text (4 decimals) or "not computed";
    opening it writes nothing into any run folder; two rows compared show the pictures and the same per-class
    table as the library."""
    from streamlit.testing.v1 import AppTest

    store, d6, d2 = world["store"], world["runs"]["d6"], world["runs"]["d2"]
    folders = {r.run_dir.name: sorted(p.name for p in r.run_dir.rglob("*")) for r in world["runs"].values()}
    env = world["env"] | {"SURGERY_DASHBOARD_CONFIG": d6.cfg.model_dump_json()}
    with environ(env, also=("SURGERY_DASHBOARD_CONFIG",)):
        at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py"), default_timeout=120)
        at.query_params.update({"page": "runs"})
        at.run()
        at.switch_page("views/runs.py").run()
        assert not at.exception, [e.message for e in at.exception]
        board = at.dataframe[0].value
        for key in ("d6", "d2", "samples"):
            run = world["runs"][key]
            for m in METHODS:
                row = board[(board["run"] == run.run_hash) & (board["method"] == m)].iloc[0]
                page = run.ap(m, "open", "voc07", run.cfg.boxes.cut, 0.1).mAP
                assert row["VOC07@0.1 open"] == f"{page:.4f}"
                pg = run.quality().methods[m].pointing_game["overall"]
                assert row["pointing game"] == f"{pg:.4f}"
        assert {r.run_dir.name: sorted(p.name for p in r.run_dir.rglob("*"))
                for r in world["runs"].values()} == folders, "opening the Runs page wrote files"

        at.query_params.update({"page": "runs", "pairs": f"{d6.run_dir.name}:vv_mixed,{d2.run_dir.name}:vv_mixed",
                                "riou": "0.1"})
        at.session_state["pairs"] = [f"{d6.run_dir.name}:vv_mixed", f"{d2.run_dir.name}:vv_mixed"]
        at.session_state["riou"] = 0.1
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert len(at.image) == 4  # the image with GT, two pairs, the colour scale
        text = "\n".join(m.value for m in at.markdown)
        assert f"Compared on {LIMIT} shared images" in text
        shown = at.dataframe[1].value
        pairs = [crossrun.Pair(d6, "vv_mixed", d6.label), crossrun.Pair(d2, "vv_mixed", d2.label)]
        table = crossrun.compare_table(pairs, crossrun.pairing_for(pairs), "present", "voc07", 0.1)
        np.testing.assert_allclose(shown[table.columns[-1]].astype(float), table[table.columns[-1]], atol=1e-12)
