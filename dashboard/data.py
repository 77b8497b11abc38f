"""The run a session looks at, opened once per process, and the per-pair tables cached per session settings.

Everything numeric comes from :mod:`surgery_core`; the functions under "per-pair tables" are Streamlit caches
around :mod:`surgery_core.run.pairs` (results gathered per (image, class) pair for browsing and drawing).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd
import streamlit as st

from dashboard import operator_settings
from surgery_core.eval.ap import COCO_IOUS, APResult
from surgery_core.eval.boxes import cut_short
from surgery_core.eval.corloc import CorLocResult
from surgery_core.eval.protocols import Cell
from surgery_core.run import pairs
from surgery_core.run.config import ModelConfig, RunConfig
from surgery_core.run.engine import resolve_model
from surgery_core.run.evaluation import sweep_rule
from surgery_core.run.facade import Run
from surgery_core.run.store import require_within

ENV_MODEL_LOAD_LOG = "SURGERY_MODEL_LOAD_LOG"


# ------------------------------------------------------------------------------------------ opening a run
def checkpoint_stamp(cfg: RunConfig) -> tuple:
    """What identifies the checkpoint file on disk now (path, size, mtime): a replaced file reopens the run."""
    from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS

    path = cfg.model.checkpoint or (DEMO_WEIGHTS if cfg.model.arch == DEMO_ARCH else None)
    if path is None and cfg.model.name:  # a named model's file as found now (pulled meanwhile: a new stamp)
        from surgery_core.model.local_models import find_model, locate

        found = locate(find_model(cfg.model.name))
        path = found.path if found else None
        if path is None:
            return ("absent", cfg.model.name)
    if path is None:
        return ("random",)
    try:
        st_ = Path(path).stat()
        return (str(path), st_.st_size, st_.st_mtime_ns)
    except OSError:
        return (str(path), "missing")


def check_paths(cfg: RunConfig) -> None:
    """Refuse data and checkpoint paths outside :func:`~dashboard.operator_settings.allowed_roots` (symlinks and
    ``..`` resolved) with a :class:`PathNotAllowedError` naming the path and the roots: links and text boxes carry
    paths, and a shared server must not open whatever they name. Nothing is read before this passes."""
    paths = [p for p in (cfg.data.root, cfg.data.images, cfg.model.checkpoint) if p]
    if paths:
        roots = operator_settings.allowed_roots()
        for p in paths:
            require_within(p, roots)


def _count_model_load(model_json: str) -> None:
    """One line per model load in ``$SURGERY_MODEL_LOAD_LOG`` (when set): the load benchmark counts them."""
    log = os.environ.get(ENV_MODEL_LOAD_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.3f} pid={os.getpid()} {model_json}\n")


@st.cache_resource(max_entries=3, show_spinner=False)
def _model(model_json: str, stamp: tuple, random_weights: bool = False):
    """The model, loaded once per process per checkpoint file version (``random_weights``: an architecture
    without a checkpoint was chosen with the form's "Random weights" box)."""
    loaded = resolve_model(RunConfig(model=ModelConfig.model_validate_json(model_json)), random_weights=random_weights)
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


RANDOM_OK = "_random_ok"  # session state: hashes of the runs this session chose random weights for (the form's box)


def random_chosen(cfg: RunConfig) -> bool:
    """Whether this session chose random weights for ``cfg`` (an architecture without a checkpoint)."""
    return checkpoint_stamp(cfg) == ("random",) and cfg.run_hash in st.session_state.get(RANDOM_OK, ())


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
    """:meth:`Run.open` with the process-wide model and a progress bar while heatmaps are computed; a note
    afterwards says what was computed."""
    bar = None

    def progress(done: int, total: int, rate: float) -> None:
        nonlocal bar
        frac = min(1.0, done / max(total, 1))
        text = (f"Run {cfg.run_hash}: computing heatmaps, {done}/{total} images ({frac:.0%}), {rate:.1f} images/s"
                if done < total else f"Run {cfg.run_hash}: heatmaps of {total} images computed; opening the run…")
        if bar is None:
            # the bar's fill is drawn at once, without the width animation that could lag behind the count
            area.html("<style>[data-testid='stProgress'] *{transition:none!important}</style>")
            bar = area.progress(0.0, text=text)
        bar.progress(frac, text=text)

    loaded = _model(cfg.model.model_dump_json(), checkpoint_stamp(cfg), random_chosen(cfg))
    t0 = time.perf_counter()
    with st.spinner(f"Opening run {cfg.run_hash}: model {cfg.model.name or cfg.model.arch}, dataset {cfg.data.kind}/{cfg.data.split} "
                    "(demo scenes are generated on first use)…", show_time=True):
        run = Run.open(cfg, operator_settings.run_store(), progress=progress, loaded=loaded)
    if bar is not None:
        bar.empty()
    if run.grids.computed:
        area.success(f"Run {cfg.run_hash} opened in {time.perf_counter() - t0:.1f} s: heatmaps computed for "
                     f"{run.grids.computed} images, {run.grids.reused} reused from the run store.",
                     icon=":material/check_circle:")
    return run


def current_run() -> Run:
    """The session's run (open already: the frame opened it before the page ran)."""
    from dashboard.state import current_config

    return open_run(current_config())


def run_key(run: Run) -> str:
    """Cache key of everything derived from a run: its hash and the content key of its grids."""
    return f"{run.run_hash}-{run.grids.key}"


_locks: dict[str, threading.Lock] = {}


def ensure(run: Run, what: str) -> None:
    """Compute a run's one-time products (``ap_tables``, ``quality``) under a spinner that says what is
    happening; instant once cached in the run folder."""
    lock = _locks.setdefault(run_key(run) + what, threading.Lock())
    if run.is_cached(what):
        return
    with lock, st.spinner(f"Computing {what.replace('_', ' ')} (once per run, then cached)…", show_time=True):
        getattr(run, what)()


def ensure_cells(run: Run, cells: Iterable[Cell]) -> None:
    """Cut the box cells a view needs under a spinner naming them, only where the run store lacks them: nothing
    else of the sweep is cut before the view is drawn."""
    todo = run.boxes.missing_cells(cells)
    if not todo:
        return
    groups: dict[tuple[str, str], list[str]] = {}
    for c in todo:
        groups.setdefault((c.protocol.name, cut_short(c.cut)), []).append(c.method)
    names = "; ".join(f"{', '.join(ms)} ({pr}, {cut})" for (pr, cut), ms in groups.items())
    with st.spinner(f"Cutting boxes of {names} (once, then kept in the run store)…", show_time=True):
        run.boxes.ensure_cells(todo)


@dataclass
class _Filler:
    """A run's sweep parts computed in a background thread (one per run) while the page stays usable.

    queue: (method, protocol, rule) parts still to compute, in the order pages asked for them; done: parts finished in
    this process; running: the part being computed; errors: part -> one-line reason."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: list[tuple[str, str, str]] = field(default_factory=list)
    done: set[tuple[str, str, str]] = field(default_factory=set)
    running: tuple[str, str, str] | None = None
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    thread: threading.Thread | None = None


@st.cache_resource(max_entries=6, show_spinner=False)
def _filler(key: str) -> _Filler:
    return _Filler()


def _fill(run: Run, f: _Filler) -> None:
    """The background thread: compute queued sweep parts until the queue is empty (no Streamlit calls here)."""
    while True:
        with f.lock:
            if not f.queue:
                f.thread, f.running = None, None
                return
            part = f.running = f.queue.pop(0)
        try:
            run.sweep_part(*part)
        except Exception as exc:  # shown on the page; the other parts go on
            f.errors[part] = f"{type(exc).__name__}: {exc}"
        with f.lock:
            f.done.add(part)


def _sweep_part(cell: Cell) -> tuple[str, str, str]:
    """The sweep part a cell lies on: ``run.sweep_part``'s (method, protocol, rule)."""
    return cell.method, cell.protocol.name, sweep_rule(cell.cut)


def sweep_parts(run: Run, cells: Iterable[Cell], start: bool = True
                ) -> tuple[dict[str, dict], list[Cell], dict[str, str]]:
    """For each cell, the sweep it lies on (its method and protocol, along its box rule: percentile or fixed value)
    when computed already (``run.sweep_part``, read from the run folder), by method; the cells whose sweep is still
    missing (with ``start``, queued to the run's background thread, started here when idle); and errors by method.
    Never blocks on a computation."""
    f = _filler(run_key(run))
    have, missing, errors = {}, [], {}
    for c in cells:
        part = _sweep_part(c)
        if part in f.errors:
            errors[c.method] = f.errors[part]
        elif run.has_sweep_part(*part):
            have[c.method] = run.sweep_part(*part)
        else:
            missing.append(c)
    if missing and start:
        with f.lock:
            for c in missing:
                part = _sweep_part(c)
                if part not in f.queue and f.running != part:
                    f.queue.append(part)
            if f.thread is None:
                f.thread = threading.Thread(target=_fill, args=(run, f), name=f"sweep-{run.run_hash}", daemon=True)
                f.thread.start()
    return have, missing, errors


def ap_result(run: Run, cell: Cell, interp: str, iou: float, coco95: bool = False, size: str = "all") -> APResult:
    """``run.ap`` of a cell with the dashboard's IoU choice (COCO's .50:.95 when ``coco95`` and interp is coco) and
    object size (``all`` or a COCO bucket)."""
    ensure_cells(run, [cell])
    thr = COCO_IOUS if (coco95 and interp == "coco") else float(iou)
    return run.ap(cell.method, cell.protocol.name, interp, cell.cut, thr, None if size == "all" else size)


def corloc_result(run: Run, cell: Cell, iou: float) -> CorLocResult:
    """``run.corloc_at`` of a cell (boxes cut under a spinner first)."""
    ensure_cells(run, [cell])
    return run.corloc_at(cell.method, cell.protocol.name, cell.cut, float(iou))


# ------------------------------------------------------------------------------------------ per-pair tables
# The numbers are :mod:`surgery_core.run.pairs`; here they are only cached per run key and settings.
@st.cache_data(max_entries=32, show_spinner="Pointing game per sample and class (once per run and method)…")
def pair_quality(key: str, method: str, _run: Run) -> pd.DataFrame:
    """:meth:`Run.pair_quality` (kept in the run folder), cached per run key and method in this process."""
    return _run.pair_quality(method)


# A Cell is a frozen dataclass: Streamlit's cache hashes it by value (its fields), so equal cells share an entry.
@st.cache_data(max_entries=64, show_spinner=False)
def pair_outcomes(key: str, cell: Cell, iou: float, _run: Run) -> pd.DataFrame:
    """:func:`surgery_core.run.pairs.pair_outcomes` (boxes cut under a spinner first), cached per run key, cell and
    IoU, with the cached :func:`pair_quality`."""
    ensure_cells(_run, [cell])
    return pairs.pair_outcomes(_run, cell, iou, quality=pair_quality(key, cell.method, _run))


@st.cache_resource(max_entries=512, show_spinner=False)
def panel(key: str, cell: Cell, image: int, cls: int, iou: float, _run: Run) -> pairs.Panel:
    """:func:`surgery_core.run.pairs.panel`, cached per run key, cell, image, class and IoU (read-only: callers must
    not modify it)."""
    return pairs.panel(_run, cell, image, cls, iou)


@st.cache_data(max_entries=8, show_spinner=False)
def boxes_zip(key: str, cells: tuple[Cell, ...], _run: Run) -> bytes:
    """The Per-class AP page's boxes download: the files of ``surgery export boxes`` (COCO results and CSV per
    cell, the ground truth, the manifest) for the cells shown, as one zip. Built when the button is clicked."""
    from surgery_core.share.export_boxes import box_export_zip

    return box_export_zip(_run, list(cells))
