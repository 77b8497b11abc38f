"""Self-contained reports (HTML and zip), the ``surgery report`` command, and view snapshots.

One small run (20 demo scenes, a random-weight checkpoint: the numbers are noise, the plumbing is real) is
opened once for the module; every report test reads it.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from surgery_core.share import html as report_html
from surgery_core.share import snapshots
from surgery_core.share.bundle import build_report_zip
from surgery_core.share.html import build_report_html
from surgery_core.share.portable import scrub_paths
from surgery_core.share.snapshots import SNAPSHOT_SCHEMA, SNAPSHOT_SUFFIX, SnapshotError, SnapshotStore, view_state

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [(0, None), (3, None)]  # class filled in from the image's most frequent class


# ============================================================================================ fixtures
@pytest.fixture(scope="module")
def rand_checkpoint(tmp_path_factory) -> Path:
    """A random-weight demo-architecture checkpoint in a deep temporary folder (tests path scrubbing)."""
    import torch
    from safetensors.torch import save_file

    from surgery_core.model.loading import load_model

    torch.manual_seed(0)
    model = load_model("Demo-ViT-32", random_weights=True).model
    path = tmp_path_factory.mktemp("secret-models") / "nested" / "rand.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, rand_checkpoint):
    from surgery_core.run.config import DataConfig, ModelConfig, RunConfig
    from surgery_core.run.facade import Run
    from surgery_core.run.store import RunStore

    cfg = RunConfig(data=DataConfig(limit=20), model=ModelConfig(checkpoint=str(rand_checkpoint)), figure_samples=1)
    return Run.open(cfg, RunStore(tmp_path_factory.mktemp("sharing-store")), device="cpu")


@pytest.fixture(scope="module")
def samples(run) -> list[tuple[int, int]]:
    out = []
    for i, _ in SAMPLES:
        labels = run.dataset.images[i].labels
        assert len(labels), "the demo scene has objects"
        out.append((i, int(np.bincount(labels).argmax())))
    return out


@pytest.fixture(scope="module")
def report(run, samples) -> str:
    return build_report_html(run, samples)


class _Doc(HTMLParser):
    """Everything the tests look at: elements with attributes, ids, tables, texts, scripts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()
        self.tables: list[dict] = []  # {"caption": str, "rows": [[(text, class)]], "header": [str]}
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._cell_class = ""
        self._in_caption = False
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_class = [], a.get("class") or ""
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self.tables[-1]["header"].append(text)
            else:
                self.tables[-1]["rows"][-1].append((text, self._cell_class))
            self._cell = None
        elif tag == "script":
            self._in_script = False
        elif tag == "table":
            self.tables[-1]["rows"] = [r for r in self.tables[-1]["rows"] if r]  # drop the header row

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
            return
        self.text.append(data)
        if self._in_caption and self.tables:
            self.tables[-1]["caption"] += data
        if self._cell is not None:
            self._cell.append(data)

    def table(self, caption_part: str) -> dict:
        hits = [t for t in self.tables if caption_part in t["caption"]]
        assert hits, f"no table whose caption contains {caption_part!r}"
        return hits[0]


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# ============================================================================================ report HTML
def test_report_has_every_section_with_live_numbers(run, report, samples):
    doc = _Doc(report)
    cfg = run.cfg
    text = " ".join(doc.text)
    for sid in ("configuration", "map", "per-class", "sweep", "iou-sweep", "percentile-sweep", "quality",
                "samples", "surgery-iou-sweep", "surgery-percentile-sweep"):
        assert sid in doc.ids, sid
    # configuration: hash, model identity, dataset, box rule
    for part in (run.run_hash, run.grids.key, "Demo-ViT-32", run.model_identity["checkpoint_sha256"],
                 "demo world (synthetic scenes) / test", "input 224 px (the model's own)",
                 "percentile 90 of the min-max-normalised map"):
        assert part in text, part
    # mAP per method and protocol for every interpolation, equal to the live numbers
    for interp in cfg.interps:
        t = doc.table(f"mAP — {interp}:")
        assert "percentile 90" in t["caption"]
        assert t["header"][:2] == ["method", "protocol"] and "IoU ≥ 0.5" in t["header"]
        assert len(t["rows"]) == len(cfg.methods) * len(cfg.protocols)
        j = t["header"].index("IoU ≥ 0.5")
        for row in t["rows"]:
            method, proto = row[0][0], row[1][0]
            live = run.ap(method, proto, interp, 90.0, 0.5).mAP
            assert row[j][0] == _fmt(None if np.isnan(live) else live), (method, proto, interp)
    coco = doc.table("mAP — coco:")
    assert coco["header"][-1] == "AP@[.50:.95]"
    # per-class AP: classes x methods, best per row marked, the computation named in the caption
    pc = doc.table("AP per class — protocol present, voc07, IoU ≥ 0.5, percentile 90")
    assert pc["header"] == ["class", "GT"] + list(cfg.methods)
    assert [r[0][0] for r in pc["rows"]] == list(run.classes)
    live = run.ap_tables()
    for r in pc["rows"]:
        vals = [live.entry(m, "present", "voc07").per_class[r[0][0]].ap_per_iou["0.5"] for m in cfg.methods]
        assert [c[0] for c in r[2:]] == [_fmt(v) for v in vals]
        nums = [v for v in vals if v is not None]
        # every cell holding the row maximum is marked, no other; nothing when all are equal
        assert [("best" in c[1]) for c in r[2:]] == [v is not None and v == max(nums) > min(nums) for v in vals]
    assert sum(len(t["rows"]) for t in doc.tables if t["caption"].startswith("AP per class")) == \
        len(run.classes) * len(cfg.protocols) * (len(cfg.interps) * (len(cfg.iou_thresholds) + 1) + 1)
    # sweeps: two plotly charts (plotly.js inlined once) and the tables behind them
    assert report.count('id="plotly-gz"') == 1 and len([s for s in doc.scripts if "Plotly.newPlot" in s]) == 2
    packed = report.split('id="plotly-gz" type="application/gzip;base64">', 1)[1].split("</script>", 1)[0]
    assert gzip.decompress(base64.b64decode(packed)).decode().count("* plotly.js v") == 1  # once, compressed
    best = doc.table("Best operating point of the sweep")
    assert len(best["rows"]) == len(cfg.methods) * len(cfg.protocols) * 2
    # quality and pointing game per method
    q = run.quality().methods
    pg = doc.table("Pointing game and GT response per method")
    assert [r[0][0] for r in pg["rows"]] == list(cfg.methods)
    assert [r[2][0] for r in pg["rows"]] == [_fmt(q[m].pointing_game["overall"]) for m in cfg.methods]
    for m in cfg.methods:
        qt = next(t for t in doc.tables if t["caption"].startswith(f"{m} — "))
        assert [r[1][0] for r in qt["rows"]] == [_fmt(x["mean_best_iou"]) for x in q[m].by_percentile]
    # samples: per sample its image once, then per method its heatmap | boxes figure, WebP data URIs equal to
    # report.figure without the image column
    imgs = [a for tag, a in doc.tags if tag == "img"]
    assert len(imgs) == len(samples) * (len(cfg.methods) + 1)
    from surgery_core.share.report import figure

    first = base64.b64decode(imgs[0]["src"].split(",", 1)[1])
    assert first == report_html.sample_picture(run, *samples[0])
    second = base64.b64decode(imgs[1]["src"].split(",", 1)[1])
    assert second == report_html._picture(figure(run, cfg.methods[0], *samples[0], image_column=False,
                                              side=report_html.PANEL_PX))
    for a in imgs:
        assert a["src"].startswith("data:image/webp;base64,")
        raw = base64.b64decode(a["src"].split(",", 1)[1])
        assert raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
        assert a["alt"]


def test_report_fetches_nothing(report):
    doc = _Doc(report)
    refs = [(tag, k, v) for tag, a in doc.tags for k, v in a.items() if k in ("src", "href", "srcset", "action",
                                                                            "poster", "data")]
    assert refs, "images and the navigation carry src/href"
    for tag, k, v in refs:
        assert v.startswith("data:") or v.startswith("#"), (tag, k, v[:80])
    assert not [t for t, _ in doc.tags if t in ("link", "iframe", "object", "embed", "base")]
    assert not [a for t, a in doc.tags if t == "script" and "src" in a]
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", report.split("<script", 1)[0])  # CSS before the charts


def test_report_is_deterministic_and_zip_too(run, report, samples):
    assert build_report_html(run, samples) == report
    assert build_report_zip(run, samples) == build_report_zip(run, samples)
    doc = _Doc(report)  # no timestamp in the text, nor in the charts' data
    charts = [s for s in doc.scripts if "Plotly.newPlot" in s and len(s) < 1_000_000]
    assert len(charts) == 2
    assert not [x for x in [" ".join(doc.text), *charts] if re.search(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d", x)]


def test_report_charts_are_valid_plotly_with_each_line_in_its_panel(run):
    """The charts are plain figure dicts (plotly's validation of each of hundreds of traces was most of their time):
    plotly's own objects accept them unchanged (an unknown or badly typed property would raise or be coerced),
    and each method's line sits in the panel titled with its protocol and interpolation (the axis domains of its
    trace against the subplot title's position)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from surgery_core.share.report_charts import iou_chart, percentile_chart

    p = report_html.collect(run, [], False)
    for chart in (iou_chart(p, run.cfg), percentile_chart(p, run.cfg)):
        assert json.loads(pio.to_json(go.Figure(chart))) == json.loads(pio.to_json(chart, validate=False))
        lay = chart["layout"]
        titles = {a["text"]: (a["x"], a["y"]) for a in lay["annotations"]}
        assert len(titles) == len({t["xaxis"] for t in chart["data"]}) >= 2 * len(run.cfg.protocols)  # a title each
        for t in chart["data"]:
            pr, it = re.search(r"protocol (\w+), (\w+)", t["hovertemplate"]).groups()
            xd = lay["xaxis" + t["xaxis"][1:]]["domain"]
            yd = lay["yaxis" + t["yaxis"][1:]]["domain"]
            assert titles[f"{pr} protocol, {it}"] == pytest.approx(((xd[0] + xd[1]) / 2, yd[1]))
        assert len(chart["data"]) % len(run.cfg.methods) == 0


def test_report_cuts_absolute_paths_unless_asked(run, report, samples, rand_checkpoint):
    secret = str(rand_checkpoint.parent)
    for needle in (secret, str(run.store.root), os.environ["SURGERY_CACHE"], str(Path.home()) + "/"):
        assert needle not in report, needle
    assert "rand.safetensors" in report
    full = build_report_html(run, samples[:1], include_paths=True)
    assert str(rand_checkpoint) in full
    # the scrubber itself
    doc = {"root": "/data/DIOR", "ckpt": "C:\\models\\remote.pt", "why": "cannot read /srv/x/11726.jpg: gone",
           "rel": "JPEGImages-test/1.jpg", "ratio": "boxes / pair", "home": "~/cache/a.npz", "n": 3}
    assert scrub_paths(doc, ["/data/DIOR"]) == {
        "root": "DIOR", "ckpt": "remote.pt", "why": "cannot read 11726.jpg: gone", "rel": "JPEGImages-test/1.jpg",
        "ratio": "boxes / pair", "home": "a.npz", "n": 3}
    assert scrub_paths("/data/DIOR/JPEGImages-test/1.jpg", ["/data/DIOR"]) == "DIOR/JPEGImages-test/1.jpg"
    assert scrub_paths("/rootfs/a", ["/root"]) == "a"  # a known prefix only at a path boundary


def test_report_zip_holds_the_numbers_images_and_html(run, report, samples):
    z = zipfile.ZipFile(io.BytesIO(build_report_zip(run, samples)))
    names = z.namelist()
    assert z.testzip() is None
    for n in ("README.txt", "report.html", "numbers/config.json", "numbers/map_results.json",
              "numbers/multi_iou_results.json", "numbers/sweep_results.json", "numbers/heatmap_quality_analysis.json",
              "numbers/samples.json", "tables/map.csv", "tables/per_class_ap.csv", "tables/sweep.csv"):
        assert n in names, n
    assert z.read("report.html").decode() == report
    cfg = run.cfg
    maps = json.loads(z.read("numbers/map_results.json"))
    assert maps["run_hash"] == run.run_hash and maps["tables"] == run.ap_tables().to_dict()["tables"]
    assert json.loads(z.read("numbers/sweep_results.json"))["table"] == run.sweep().to_dict()["table"]
    assert json.loads(z.read("numbers/heatmap_quality_analysis.json"))["methods"] == run.quality().to_dict()["methods"]
    conf = json.loads(z.read("numbers/config.json"))
    assert conf["config"]["model"]["checkpoint"] == "rand.safetensors"
    multi = json.loads(z.read("numbers/multi_iou_results.json"))
    assert list(multi["results"]["vv_mixed"]["present"]["voc07"]["mAP_per_iou"]) == \
        [f"{t:.6g}" for t in cfg.iou_thresholds]
    rows = list(csv.DictReader(io.StringIO(z.read("tables/per_class_ap.csv").decode())))
    assert len(rows) == len(run.classes) * len(cfg.protocols) * (len(cfg.interps) * (len(cfg.iou_thresholds) + 1) + 1)
    row = next(r for r in rows if (r["protocol"], r["interp"], r["iou"]) == ("present", "voc", "0.5")
               and int(r["n_gt"]) > 0)
    live = run.ap_tables().entry("vv_mixed", "present", "voc").class_ap(row["class"], "0.5")
    assert float(row["vv_mixed"]) == pytest.approx(live, abs=1e-9)
    sweep = list(csv.DictReader(io.StringIO(z.read("tables/sweep.csv").decode())))
    assert len(sweep) == (len(cfg.methods) * len(cfg.protocols) * 2 * len(cfg.sweep_percentiles)
                          * len(cfg.iou_thresholds))
    pngs = sorted(n for n in names if n.endswith(".webp"))
    assert len(pngs) == len(samples) * (len(cfg.methods) + 1)
    # WebP is compressed already: stored as it is; the text members deflated
    assert {z.getinfo(n).compress_type for n in pngs} == {zipfile.ZIP_STORED}
    assert {z.getinfo(n).compress_type for n in names if n not in pngs} == {zipfile.ZIP_DEFLATED}
    uris = [a["src"].split(",", 1)[1] for tag, a in _Doc(report).tags if tag == "img"]
    assert sorted(base64.b64decode(u) for u in uris) == sorted(z.read(n) for n in pngs)
    listed = json.loads(z.read("numbers/samples.json"))["samples"]
    assert [(s["image_index"], s["class_index"]) for s in listed] == samples


def test_report_rejects_bad_samples(run):
    from surgery_core.errors import SurgeryError

    with pytest.raises(SurgeryError, match="outside the dataset"):
        build_report_html(run, [(10_000, 0)])
    with pytest.raises(SurgeryError, match="outside the class list"):
        build_report_html(run, [(0, 99)])


def test_report_command(run, tmp_path, rand_checkpoint, capsys):
    from surgery_core.cli import main

    out, zpath = tmp_path / "r" / "report.html", tmp_path / "report.zip"
    rc = main(["report", "--checkpoint", str(rand_checkpoint), "--limit", "20", "--figures", "1", "--store",
               str(run.store.root), "--device", "cpu", "--out", str(out), "--zip", str(zpath), "--samples-count", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"run {run.run_hash}: 1 samples" in printed and "cut to base names" in printed
    text = out.read_text()
    assert text == build_report_html(run, report_html.default_samples(run, 1))
    assert zipfile.ZipFile(zpath).read("report.html").decode() == text


@pytest.mark.browser
def test_report_renders_offline_in_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    from dashboard.serving import CHROMIUM, CHROMIUM_ARGS, new_page

    path = tmp_path / "report.html"
    path.write_text(report)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser, 1300, 900)  # a request off this machine fails the test (conftest)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector("#surgery-percentile-sweep .main-svg", timeout=30_000)
            assert page.locator(".js-plotly-plot .main-svg").count() >= 2
            assert page.locator("#surgery-iou-sweep .scatterlayer .trace").count() > 0
            # the IoU buttons of the percentile sweep work
            page.locator("#surgery-percentile-sweep .updatemenu-button").first.click()
            page.wait_for_function("() => document.querySelector('#surgery-percentile-sweep .gtitle')"
                                   ".textContent.includes('IoU ≥ 0.05')", timeout=10_000)
            loaded = page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            assert loaded
        finally:
            browser.close()
    assert not errors, errors


# ============================================================================================ snapshots
def _live_numbers(run) -> dict:
    t = run.ap_tables()
    return {"percentile": t.percentile, "ap": t.entry("vv_mixed", "present", "voc07").to_dict()["per_iou"],
            "pointing_game": run.quality().methods["vv_mixed"].pointing_game,
            "np_scalar": np.float32(0.25), "np_array": np.arange(3), "nan": float("nan")}


def test_snapshot_round_trip(run, tmp_path, samples, monkeypatch):
    from surgery_core.share.report import figure

    store = SnapshotStore(tmp_path / "snaps")
    assert store.list() == []
    image_index, class_index = samples[0]
    state = view_state(run, "compare", image_index=image_index, class_index=class_index, iou=0.5,
                       protocol="present", interp="voc07", extra_setting={"alpha": 0.5})
    assert state["run_hash"] == run.run_hash and state["config"]["model"]["checkpoint"] == run.cfg.model.checkpoint
    assert state["class"] == run.classes[class_index] and state["methods"] == list(run.cfg.methods)
    from surgery_core.share.drawing import encode_png

    png = encode_png(figure(run, "vv_mixed", image_index, class_index))
    images = {"vv_mixed figure": png, "../odd/name.png": b"\x89PNG\r\n\x1a\nnot really"}
    times = iter(["2025-01-02T03:04:05", "2025-01-02T03:04:06"])
    import datetime as dt

    monkeypatch.setattr(snapshots, "_now_utc", lambda: dt.datetime.fromisoformat(next(times)).replace(
        tzinfo=dt.timezone.utc))
    first = store.save(state, "Airplanes in vv_mixed", "v-v path finds the wings", _live_numbers(run), images)
    second = store.save({"page": "browse"}, "Second look", "nothing to see")
    assert [m.id for m in store.list()] == [second, first]  # newest first
    assert [m.id for m in store.list("WINGS")] == [first] and [m.id for m in store.list("second look")] == [second]
    assert store.list("no such words") == []
    meta = store.list()[1]
    assert (meta.title, meta.note, meta.created, meta.schema, meta.run_hash, meta.page, meta.image_count, meta.ok) == \
        ("Airplanes in vv_mixed", "v-v path finds the wings", "2025-01-02T03:04:05Z", SNAPSHOT_SCHEMA, run.run_hash,
         "compare", 2, True)
    files = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert files == sorted([first + SNAPSHOT_SUFFIX, second + SNAPSHOT_SUFFIX])  # one file each, no leftovers

    snap = store.load(first)
    assert snap.state == state and snap.images == images and snap.title == "Airplanes in vv_mixed"
    live = run.ap_tables().entry("vv_mixed", "present", "voc07").to_dict()["per_iou"]
    assert snap.numbers["ap"] == live  # the numbers shown then are the live numbers, exactly
    assert snap.numbers["pointing_game"] == run.quality().methods["vv_mixed"].pointing_game
    assert (snap.numbers["np_scalar"], snap.numbers["np_array"], snap.numbers["nan"]) == (0.25, [0, 1, 2], None)
    alone_05 = run.ap("vv_mixed", "present", "voc07", 90.0, 0.5).mAP  # scored live at one threshold
    assert snap.numbers["ap"]["mAP_per_iou"]["0.5"] == pytest.approx(None if np.isnan(alone_05) else alone_05,
                                                                     abs=1e-12)

    # opens with no run store, no dataset and no model: a fresh process, environment pointing nowhere
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(store.path_of(first), alone)
    env = {**os.environ, "SURGERY_CACHE": str(tmp_path / "gone"), "SURGERY_STORE": str(tmp_path / "gone" / "store"),
           "PYTHONPATH": str(REPO)}
    code = ("import json, sys; from surgery_core.share.snapshots import SnapshotStore; "
            "s = SnapshotStore(sys.argv[1]).load(sys.argv[2]); "
            "print(json.dumps({'ap': s.numbers['ap'], 'n': len(s.images), 'torch': 'torch' in sys.modules}))")
    res = subprocess.run([sys.executable, "-c", code, str(alone), first], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    assert got == {"ap": live, "n": 2, "torch": False}
    assert not (tmp_path / "gone").exists()

    store.delete(first)
    assert [m.id for m in store.list()] == [second]
    with pytest.raises(SnapshotError, match="no snapshot"):
        store.load(first)
    with pytest.raises(SnapshotError, match="no snapshot"):
        store.delete(first)
    with pytest.raises(SnapshotError, match="JSON"):
        store.save({"page": "x", "bad": object()}, "t")


def _zip(path: Path, doc, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if doc is not None:
            z.writestr("snapshot.json", doc if isinstance(doc, str) else json.dumps(doc))
        for name, data in extra:
            z.writestr(name, data)
    path.write_bytes(buf.getvalue())


def test_snapshot_state_keeps_cells_under_one_key_and_reads_the_layout_before_cells(tmp_path):
    """A view's cells are stored under ``cells`` exactly (a percentile of any digits, a rule's value) and shown as
    the separate keys; a state of the layout before cells (methods, percentile or box rule in words, protocol)
    loads as written and reads as the same cells."""
    from surgery_core.eval.boxes import BoxRule
    from surgery_core.eval.protocols import Cell
    from surgery_core.share.snapshots import separate_fields, shown_cells

    cells = [Cell.of("standard", "open", 99.9), Cell.of("vv_mixed", "open", 99.9)]
    new = view_state(None, "ap", cells=cells, iou=0.3, interp="voc07", size="all")
    assert new["cells"] == [{"method": "standard", "protocol": "open", "cut": 99.9},
                            {"method": "vv_mixed", "protocol": "open", "cut": 99.9}]
    assert not {"methods", "percentile", "protocol", "box_rule"} & set(new)
    fixed = [Cell.of("gem", "present", BoxRule("fixed", 0.123456789))]
    store = SnapshotStore(tmp_path / "snaps")
    for state, want in ((new, cells), (view_state(None, "sweep", cells=fixed), fixed)):
        assert shown_cells(store.load(store.save(state, "cells")).state) == want  # exactly, through the file
    assert {k: separate_fields(new)[k] for k in ("methods", "percentile", "protocol")} == {
        "methods": ["standard", "vv_mixed"], "percentile": 99.9, "protocol": "open"}
    assert separate_fields(view_state(None, "ap", cells=[Cell.of("gem", "open", BoxRule("otsu"))]))["box_rule"] \
        == "Otsu"
    with pytest.raises(ValueError, match="not both"):
        view_state(None, "ap", cells=cells, methods=["gem"])

    # the layout before cells, written by hand as view_state wrote it then (separate keys; another rule in words)
    old = {"page": "ap", "image_index": None, "class_index": None, "methods": ["standard", "gem"], "percentile": 75.0,
           "iou": 0.5, "protocol": "present", "interp": "voc07", "coco95": False, "size": "all"}
    old_rule = old | {"percentile": None, "protocol": "open", "box_rule": "fixed value 0.5"}
    for state, cut in ((old, 75.0), (old_rule, BoxRule("fixed", 0.5))):
        _zip(tmp_path / "snaps" / f"20200101T000000Z-old-{len(state):08d}{SNAPSHOT_SUFFIX}",
             {"schema": 1, "kind": "surgery-snapshot", "id": "x", "title": "old", "note": "", "created":
              "2020-01-01T00:00:00Z", "run_hash": None, "page": "ap", "state": state, "numbers": {}, "images": []})
        loaded = store.load(f"20200101T000000Z-old-{len(state):08d}").state
        assert loaded == state and separate_fields(loaded) == state  # opens, and shows, as written
        assert shown_cells(loaded) == [Cell.of(m, state["protocol"], cut) for m in ("standard", "gem")]
    assert shown_cells({"page": "quality", "methods": ["gem"], "percentile": 90.0, "protocol": None}) == []


def test_damaged_and_other_version_snapshots_are_listed_with_an_error(tmp_path):
    root = tmp_path / "snaps"
    store = SnapshotStore(root)
    good = store.save({"page": "browse"}, "good one", "", {"x": 1}, {"a": b"\x89PNG\r\n\x1a\n"})
    whole = store.path_of(good).read_bytes()
    (root / f"20200101T000000Z-garbage-00000000{SNAPSHOT_SUFFIX}").write_bytes(b"this is not a zip")
    (root / f"20200101T000001Z-truncated-00000000{SNAPSHOT_SUFFIX}").write_bytes(whole[: len(whole) // 2])
    (root / f"empty{SNAPSHOT_SUFFIX}").write_bytes(b"")
    base = json.loads(zipfile.ZipFile(store.path_of(good)).read("snapshot.json"))
    _zip(root / f"20200101T000002Z-old-00000000{SNAPSHOT_SUFFIX}", base | {"schema": 0, "title": "old one"})
    _zip(root / f"20200101T000003Z-new-00000000{SNAPSHOT_SUFFIX}", base | {"schema": SNAPSHOT_SCHEMA + 1,
                                                                           "title": "newer"})
    _zip(root / f"20200101T000004Z-nojson-00000000{SNAPSHOT_SUFFIX}", None, [("x.txt", "hello")])
    _zip(root / f"20200101T000005Z-badjson-00000000{SNAPSHOT_SUFFIX}", "{not json")
    _zip(root / f"20200101T000006Z-noschema-00000000{SNAPSHOT_SUFFIX}", {"title": "t"})
    _zip(root / f"20200101T000007Z-list-00000000{SNAPSHOT_SUFFIX}", "[1, 2]")
    _zip(root / f"20200101T000008Z-missing-image-00000000{SNAPSHOT_SUFFIX}",  # images index, no members
         base | {"title": "missing", "created": "2020-01-01T00:00:08Z"})
    (root / f".hidden{SNAPSHOT_SUFFIX}.tmp").write_bytes(b"a write in progress")
    (root / "notes.txt").write_text("not a snapshot")
    (root / f"dir{SNAPSHOT_SUFFIX}").mkdir()

    listed = {m.id: m for m in store.list()}
    assert set(listed) == {good, "empty"} | {p.name[: -len(SNAPSHOT_SUFFIX)] for p in root.glob("2020*")}
    assert listed[good].ok
    errors = {k: m.error for k, m in listed.items() if not m.ok}
    assert "not a zip file" in errors["20200101T000000Z-garbage-00000000"]
    assert "not a zip file" in errors["20200101T000001Z-truncated-00000000"]
    assert "not a zip file" in errors["empty"]
    assert "schema version 0 is older" in errors["20200101T000002Z-old-00000000"]
    assert listed["20200101T000002Z-old-00000000"].title == "old one"
    assert f"schema version {SNAPSHOT_SCHEMA + 1} is newer" in errors["20200101T000003Z-new-00000000"]
    assert "snapshot.json" in errors["20200101T000004Z-nojson-00000000"]
    assert "not valid JSON" in errors["20200101T000005Z-badjson-00000000"]
    assert "no schema version" in errors["20200101T000006Z-noschema-00000000"]
    assert "not an object" in errors["20200101T000007Z-list-00000000"]
    assert "20200101T000008Z-missing-image-00000000" not in errors  # listing reads no images ...
    with pytest.raises(SnapshotError, match="unreadable"):  # ... loading does, and says so
        store.load("20200101T000008Z-missing-image-00000000")
    assert [m.id for m in store.list() if m.ok] == [good, "20200101T000008Z-missing-image-00000000"]  # newest first
    for sid in errors:
        with pytest.raises(SnapshotError, match=re.escape(sid)):
            store.load(sid)
    assert store.list("good") == [listed[good]]
    store.delete("20200101T000000Z-garbage-00000000")  # damaged files can be removed
    assert "20200101T000000Z-garbage-00000000" not in {m.id for m in store.list()}


@pytest.mark.parametrize("title", ["../../etc/passwd", "/etc/passwd", "a\x00b", "飛行機 ✈ Überblick", "",
                                   "C:\\Windows\\system32", "..", "x" * 500, "con", "  \t\n "])
def test_snapshot_titles_are_sanitised(tmp_path, title):
    root = tmp_path / "snaps"
    store = SnapshotStore(root)
    sid = store.save({"page": "p"}, title, "note\x00with nul")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[a-z0-9-]{1,40}-[0-9a-f]{8}", sid)
    files = list(root.iterdir())
    assert [f.name for f in files] == [sid + SNAPSHOT_SUFFIX] and files[0].resolve().parent == root.resolve()
    assert not list(tmp_path.glob("etc*")) and not (root.parent.parent / "etc").exists()
    meta = store.list()[0]
    assert "\x00" not in meta.title and "\x00" not in meta.note and meta.note == "notewith nul"
    assert len(meta.title) <= 200 and meta.title  # empty titles become "untitled"
    if title == "飛行機 ✈ Überblick":
        assert meta.title == title and "-uberblick-" in sid
    if title == "../../etc/passwd":
        assert meta.title == title and "-etc-passwd-" in sid


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "x\x00y", "", ".hidden",
                                 "..", "a..b", "C:evil", "ü", "x" * 300, None, 123])
def test_snapshot_ids_are_validated(tmp_path, bad):
    store = SnapshotStore(tmp_path / "snaps")
    store.save({"page": "p"}, "keep me")
    (tmp_path / f"victim{SNAPSHOT_SUFFIX}").write_bytes(b"outside the store")
    with pytest.raises(SnapshotError, match="not a snapshot id"):
        store.load(bad)
    with pytest.raises(SnapshotError, match="not a snapshot id"):
        store.delete(bad)
    assert (tmp_path / f"victim{SNAPSHOT_SUFFIX}").exists() and len(store.list()) == 1


def test_snapshot_store_default_root(monkeypatch, tmp_path):
    from surgery_core.run.store import RunStore

    monkeypatch.setenv("SURGERY_STORE", str(tmp_path / "store"))
    assert SnapshotStore().root == tmp_path / "store" / "snapshots"
    assert SnapshotStore.for_store(RunStore(tmp_path / "s2")).root == tmp_path / "s2" / "snapshots"


def test_snapshot_store_works_where_torch_cannot_be_imported(tmp_path):
    # A fresh process in which importing torch or open_clip fails: the snapshot store (default root included)
    # saves, lists and loads all the same.
    code = ("import sys\n"
            "class NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'open_clip'):\n"
            "            raise ImportError('no ' + name + ' here')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from surgery_core.share.snapshots import SnapshotStore\n"
            "s = SnapshotStore()\n"
            "sid = s.save({'page': 'p'}, 'no torch')\n"
            "print(s.load(sid).title, len(s.list()))\n")
    env = {**os.environ, "SURGERY_STORE": str(tmp_path / "store"), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["no", "torch", "1"]
    assert len(list((tmp_path / "store" / "snapshots").iterdir())) == 1
