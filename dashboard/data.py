"""The run a session looks at, opened once per process, and the few per-pair tables the library lacks.

Everything numeric comes from :mod:`surgery_core`. The functions under "per-pair tables" only gather library
results per (image, class) pair for browsing and drawing (candidates to move into ``surgery_core``).
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from surgery_core.ap import COCO_IOUS, APResult
from surgery_core.config import ModelConfig, RunConfig
from surgery_core.detections import Detections
from surgery_core.engine import resolve_model
from surgery_core.evaluation import box_params_for
from surgery_core.maps import working_map
from surgery_core.matching import match_detections
from surgery_core.quality import heatmap_quality, pointing_point, quality_records
from surgery_core.runs import BOXES_FILE, Run
from surgery_core.store import require_within

ENV_MODEL_LOAD_LOG = "SURGERY_MODEL_LOAD_LOG"


# ------------------------------------------------------------------------------------------ opening a run
def checkpoint_stamp(cfg: RunConfig) -> tuple:
    """What identifies the checkpoint file on disk now (path, size, mtime): a replaced file reopens the run."""
    from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS

    path = cfg.model.checkpoint or (DEMO_WEIGHTS if cfg.model.arch == DEMO_ARCH else None)
    if path is None:
        return ("random",)
    try:
        st_ = Path(path).stat()
        return (str(path), st_.st_size, st_.st_mtime_ns)
    except OSError:
        return (str(path), "missing")


def allowed_roots() -> list[Path]:
    """Where the dashboard may read datasets and checkpoints named in a text box or a link.

    The configured roots (``data_roots`` of ``$SURGERY_DASHBOARD_CONFIG`` and ``$SURGERY_DATA_ROOTS``), or,
    with none configured, the cache folder (demo scenes) and the run store; always the files shipped with
    the package (real DIOR samples, demo weights) and the paths of the app's default run (the operator's)."""
    from surgery_core.config import cache_dir
    from surgery_core.demo.model import WEIGHTS_DIR
    from surgery_core.engine import SAMPLES_ROOT
    from surgery_core.store import default_store

    from .state import app_default_config, configured_data_roots

    roots = list(configured_data_roots()) or [cache_dir(), default_store().root]
    d = app_default_config()
    operator = [Path(p) for p in (d.data.root, d.data.images, d.model.checkpoint) if p]
    return roots + [SAMPLES_ROOT, WEIGHTS_DIR] + operator


def check_paths(cfg: RunConfig) -> None:
    """Refuse data and checkpoint paths outside :func:`allowed_roots` (symlinks and ``..`` resolved) with a
    :class:`PathNotAllowedError` naming the path and the roots: links and text boxes carry paths, and a shared
    server must not open whatever they name. Nothing is read before this passes."""
    paths = [p for p in (cfg.data.root, cfg.data.images, cfg.model.checkpoint) if p]
    if paths:
        roots = allowed_roots()
        for p in paths:
            require_within(p, roots)


def _count_model_load(model_json: str) -> None:
    """One line per model load in ``$SURGERY_MODEL_LOAD_LOG`` (when set): the load benchmark counts them."""
    log = os.environ.get(ENV_MODEL_LOAD_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.3f} pid={os.getpid()} {model_json}\n")


@st.cache_resource(max_entries=3, show_spinner=False)
def _model(model_json: str, stamp: tuple):
    """The model, loaded once per process per checkpoint file version."""
    loaded = resolve_model(RunConfig(model=ModelConfig.model_validate_json(model_json)))
    _count_model_load(model_json)
    return loaded


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    run: Run | None = None


@st.cache_resource(max_entries=6, show_spinner=False)
def _slot(run_hash: str, stamp: tuple) -> _Slot:
    """One slot per run (keyed by run hash and checkpoint version): the Run lives here for the process."""
    return _Slot()


def open_run(cfg: RunConfig, area=None) -> Run:
    """The Run of ``cfg``: instantly when open in this process, else loaded (and computed where the store lacks
    grids) with a visible progress bar in ``area`` (a Streamlit container). Paths are checked against
    the data roots (:func:`check_paths`) every time, also for runs another session opened."""
    check_paths(cfg)
    slot = _slot(cfg.run_hash, checkpoint_stamp(cfg))
    if slot.run is None:
        with slot.lock:
            if slot.run is None:
                slot.run = _open(cfg, area if area is not None else st.container())
    return slot.run


def _open(cfg: RunConfig, area) -> Run:
    """:meth:`Run.open` with a progress bar while heatmaps are computed (and the process-wide model when
    ``Run.open`` takes ``loaded=``); a note afterwards says what was computed."""
    bar = None

    def progress(done: int, total: int, rate: float) -> None:
        nonlocal bar
        text = f"Run {cfg.run_hash}: computing heatmaps, {done}/{total} images, {rate:.1f} images/s"
        if bar is None:
            bar = area.progress(0.0, text=text)
        bar.progress(min(1.0, done / max(total, 1)), text=text)

    kwargs = {}
    if "loaded" in inspect.signature(Run.open).parameters:
        kwargs["loaded"] = _model(cfg.model.model_dump_json(), checkpoint_stamp(cfg))
    t0 = time.perf_counter()
    with st.spinner(f"Opening run {cfg.run_hash}: model {cfg.model.arch}, dataset {cfg.data.kind}/{cfg.data.split} "
                    "(demo scenes are generated on first use)…", show_time=True):
        run = Run.open(cfg, progress=progress, **kwargs)
    if bar is not None:
        bar.empty()
    if run.grids.computed:
        area.success(f"Run {cfg.run_hash} opened in {time.perf_counter() - t0:.1f} s: heatmaps computed for "
                     f"{run.grids.computed} images, {run.grids.reused} reused from the run store.",
                     icon=":material/check_circle:")
    return run


def current_run() -> Run:
    """The session's run (open already: the frame opened it before the page ran)."""
    from .state import current_config

    return open_run(current_config())


def run_key(run: Run) -> str:
    """Cache key of everything derived from a run: its hash and the content key of its grids."""
    return f"{run.run_hash}-{run.grids.key}"


_locks: dict[str, threading.Lock] = {}


def ensure(run: Run, what: str) -> None:
    """Compute a run's one-time products (``boxes``, ``ap_tables``, ``sweep``, ``quality``) under a spinner that
    says what is happening; instant once cached in the run folder."""
    lock = _locks.setdefault(run_key(run) + what, threading.Lock())
    if what == "boxes":
        if "boxes" in run.__dict__:
            return
        msg = None if (run.run_dir / BOXES_FILE).is_file() else (
            f"Cutting boxes for {len(run.cfg.methods)} methods x {len(run.cfg.protocols)} protocols x every "
            "percentile of the sweep (once per run, then cached in the run folder)…")
        with lock, st.spinner(msg or "Loading boxes…", show_time=msg is not None):
            run.boxes
        return
    if (run.run_dir / f"{what}.json").is_file():
        return
    ensure(run, "boxes")
    with lock, st.spinner(f"Computing {what.replace('_', ' ')} (once per run, then cached)…", show_time=True):
        getattr(run, what)()


def ap_result(run: Run, method: str, protocol: str, interp: str, percentile: float, iou: float,
              coco95: bool = False) -> APResult:
    """``run.ap`` with the dashboard's IoU choice (COCO's .50:.95 when ``coco95`` and interp is coco)."""
    ensure(run, "boxes")
    thr = COCO_IOUS if (coco95 and interp == "coco") else float(iou)
    return run.ap(method, protocol, interp, float(percentile), thr)


# ------------------------------------------------------------------------------------------ per-pair tables
@st.cache_data(max_entries=32, show_spinner="Pointing game per sample and class (once per run and method)…")
def pair_quality(key: str, method: str, _run: Run) -> pd.DataFrame:
    """Per (image, class) pair with ground truth: pointing-game hit, energy share, GT response (raw similarity),
    from :func:`surgery_core.quality.quality_records` (no percentile-dependent figures)."""
    recs = quality_records(_run.grids.grids[method], _run.image_sizes(), _run.gt, _run.cfg.boxes, (),
                           image_ids=_run.grids.rows)
    return pd.DataFrame({
        "image": [r.image for r in recs], "class_id": [r.class_id for r in recs],
        "pointing_hit": [r.pointing_hit for r in recs], "energy": [r.energy for r in recs],
        "gt_mean": [r.gt_mean for r in recs], "gt_max": [r.gt_max for r in recs],
    })


@st.cache_data(max_entries=64, show_spinner=False)
def pair_outcomes(key: str, method: str, protocol: str, percentile: float, iou: float, _run: Run) -> pd.DataFrame:
    """Per (image, class) pair with ground truth, for one method: GT count, detections, true positives at ``iou``
    (greedy matching over the whole run, as AP scores them), best IoU of any detection, pointing-game hit.

    Columns: image (dataset index), image_id, class_id, class, n_gt, n_det, n_tp, best_iou, pointing_hit, energy.
    """
    ensure(_run, "boxes")
    gt = _run.gt
    k = len(_run.classes)
    det = match_detections(gt, _run.detections(method, protocol, float(percentile)), float(iou))
    gpair, n_gt = np.unique(gt.image * k + gt.class_id, return_counts=True)
    dpair = det.image * k + det.class_id
    pos = np.searchsorted(gpair, dpair)
    ok = (pos < len(gpair)) & (gpair[np.minimum(pos, len(gpair) - 1)] == dpair)
    n_det = np.bincount(pos[ok], minlength=len(gpair))
    n_tp = np.bincount(pos[ok], weights=det.extra["tp"][ok].astype(float), minlength=len(gpair)).astype(int)
    best = np.zeros(len(gpair))
    np.maximum.at(best, pos[ok], det.extra["iou"][ok])
    images, classes = gpair // k, gpair % k
    df = pd.DataFrame({
        "image": images, "image_id": [_run.dataset.images[i].image_id for i in images], "class_id": classes,
        "class": [_run.classes[c] for c in classes], "n_gt": n_gt, "n_det": n_det, "n_tp": n_tp, "best_iou": best,
    })
    q = pair_quality(key, method, _run)[["image", "class_id", "pointing_hit", "energy"]]
    return df.merge(q, on=["image", "class_id"], how="left")


@dataclass
class PanelInfo:
    """One method's view of one image and class: boxes with their labels, and the heatmap's figures."""

    method: str
    map01: np.ndarray  # normalised grid upsampled to the image size (what is drawn)
    grid: np.ndarray  # raw similarity grid
    det: Detections  # boxes with extra tp / iou
    point: tuple[float, float]  # pointing-game point, original px
    pointing_hit: bool | None  # None: no GT of the class in the image
    energy: float | None
    best_iou: float | None


@st.cache_resource(max_entries=512, show_spinner=False)
def panel(key: str, method: str, image: int, cls: int, percentile: float, protocol: str, iou: float,
          _run: Run) -> PanelInfo:
    """Everything the Compare page draws for one method (boxes live at any percentile, as the library cuts them).
    Cached per run key and settings (read-only: callers must not modify it)."""
    run = _run
    rec = run.dataset.images[image]
    params = box_params_for(run.cfg, protocol).model_copy(update={"percentile": float(percentile)})
    grid = run.grid(method, image, cls)
    xyxy, score = run.boxes_for(method, image, cls, percentile, protocol)
    n = len(score)
    det = Detections(xyxy, score, np.full(n, cls), np.full(n, image))
    sel = rec.labels == cls
    gt = Detections(rec.xyxy[sel], np.ones(int(sel.sum())), np.full(int(sel.sum()), cls),
                    np.full(int(sel.sum()), image))
    det = match_detections(gt, det, float(iou))
    wmap = working_map(grid, rec.width, rec.height, params.box_resolution)
    point = pointing_point(wmap, rec.width, rec.height, params.box_resolution)
    hit = energy = best = None
    if sel.any():
        q = heatmap_quality(grid, rec.width, rec.height, rec.xyxy[sel], params, (float(percentile),))
        hit, energy, best = q.pointing_hit, q.energy, q.best_iou[0]
    return PanelInfo(method, working_map(grid, rec.width, rec.height, None), grid, det, point, hit, energy, best)


def ap_table(results: dict[str, APResult], classes: tuple[str, ...]) -> pd.DataFrame:
    """Classes x methods AP table (fractions) with GT and detection counts, and an ``mAP`` row last."""
    methods = list(results)
    first = results[methods[0]]
    df = pd.DataFrame({"class": list(classes), "GT": first.n_gt.astype(int)})
    for m in methods:
        df[m] = results[m].per_class_ap
    for m in methods:
        df[f"det {m}"] = results[m].n_det.astype(int)
    df = df[df["GT"] > 0].reset_index(drop=True)
    row = {"class": "mAP", "GT": int(first.n_gt.sum())}
    row.update({m: results[m].mAP for m in methods})
    row.update({f"det {m}": int(results[m].n_det.sum()) for m in methods})
    return pd.concat([df, pd.DataFrame([row])], ignore_index=True)
