"""A run's boxes as columns on disk, one folder per :class:`~surgery_core.eval.protocols.Cell` (method, protocol,
cut), cut when first asked for: :class:`RunBoxes`, the one box container (``boxes[cell]``).

Layout under the run store root::

    boxes/<box_key>/<method>/<protocol>/p<percentile>/xyxy.npy      float64 [n, 4] original-image pixels
                                                     score.npy     float64 [n]
                                                     class_id.npy  uint8 [n] (uint16 beyond 256 classes)
                                                     image.npy     int32 [n] dataset image index

``box_key`` covers what the boxes depend on (the grids' content key, the data configuration, the images that
have grids, the class list and every box parameter but the percentile), so runs that differ only in what they
report (IoU thresholds, interpolations, sweep percentiles, protocols, figures) share their cells.

Cells are read memory-mapped (``np.load(mmap_mode="r")``): reading one cell touches only its own files, and
the coordinate and score pages stay in the page cache rather than the process heap. Coordinates and scores are
kept in float64 because AP must not move when boxes are stored and read back: float32 would merge scores that
differ in their last bits (reordering ties) and shift IoUs across a threshold. The cap
(``BoxParams.max_dets``, :mod:`surgery_core.eval.maxdets`) is what keeps cells small: at most ``max_dets`` boxes per
image.

A cell is written into a temporary folder beside it and renamed into place, so readers see a whole cell or
none; two processes cutting the same cell both write whole folders and the first rename wins (equal content).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from surgery_core.data.datasets import Dataset
from surgery_core.data.detections import Detections
from surgery_core.eval.boxes import as_cut
from surgery_core.eval.protocols import Cell
from surgery_core.files import shared_mode
from surgery_core.lru import LRU
from surgery_core.progress import QUIET, Progress
from surgery_core.run.config import RunConfig
from surgery_core.run.evaluation import all_percentiles, cut_boxes, maps_per_protocol
from surgery_core.run.grids import GridSet

COLUMNS = ("xyxy", "score", "class_id", "image")


def box_key(cfg: RunConfig, gs: GridSet) -> str:
    """16 hex digits over everything a run's boxes depend on except the method, protocol and percentile."""
    doc = {"grids": gs.key, "data": cfg.data.model_dump(mode="json"), "classes": list(gs.classes),
           "rows": hashlib.sha256(np.ascontiguousarray(gs.rows, np.int64).tobytes()).hexdigest(),
           # the box rule is part of each cell's folder name, not of the key: runs of any rule share the key
           "boxes": cfg.boxes.model_dump(mode="json", exclude={"percentile", "rule", "fixed_value"})}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


class CellStore:
    """Columnar box cells under one folder (see the module note): the disk side of :class:`RunBoxes`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, cell: Cell) -> Path:
        """The cell's folder: ``<method>/<protocol>/p<percentile>``, or ``otsu`` / ``fixed<value>`` for the other
        box rules (``Cell.tag``)."""
        return self.root / cell.tag

    def has(self, cell: Cell) -> bool:
        d = self.path(cell)
        return all((d / f"{c}.npy").is_file() for c in COLUMNS)

    def read(self, cell: Cell) -> Detections | None:
        """The cell's boxes (coordinates and scores memory-mapped), or None when absent or unreadable."""
        d = self.path(cell)
        try:
            cols = {c: _load(d / f"{c}.npy") for c in COLUMNS}
            return Detections(cols["xyxy"], cols["score"], cols["class_id"], cols["image"])
        except (OSError, ValueError):  # absent, or damaged: recomputed by the caller, never served
            return None

    def discard(self, cell: Cell) -> None:
        """Remove a cell (one that cannot be read back), so that it is cut again."""
        shutil.rmtree(self.path(cell), ignore_errors=True)

    def write(self, cell: Cell, det: Detections, num_classes: int) -> None:
        """Store one cell atomically (a whole folder renamed into place)."""
        d = self.path(cell)
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=f".{d.name}.", suffix=".tmp"))
        try:
            cls_type = np.uint8 if num_classes <= 256 else np.uint16
            cols = {"xyxy": np.ascontiguousarray(det.xyxy, np.float64),
                    "score": np.ascontiguousarray(det.score, np.float64),
                    "class_id": det.class_id.astype(cls_type), "image": det.image.astype(np.int32)}
            for name, arr in cols.items():
                with open(tmp / f"{name}.npy", "wb") as f:
                    np.save(f, arr, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, shared_mode(0o777))
            try:
                os.rename(tmp, d)
            except OSError:  # another process stored the cell first (same content)
                if not self.has(cell):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # numpy cannot map an empty array: there is nothing to map
        return np.load(path, allow_pickle=False)


class RunBoxes:
    """The boxes of one run, cell by cell: ``boxes[cell]`` (or :meth:`get`) cuts a :class:`Cell` on first use and
    stores it; :meth:`ensure` cuts many cells of a method in one pass over its maps (each working map is built once
    for all percentiles, and once for both protocols when they miss the same ones). The last ``keep`` cells read
    stay in memory."""

    def __init__(self, cfg: RunConfig, dataset: Dataset, gs: GridSet, root: str | Path, bars: Progress = QUIET,
                 workers: int | None = None, keep: int = 16):
        self.cfg, self.dataset, self.gs, self.bars, self.workers = cfg, dataset, gs, bars, workers
        self.cells = CellStore(root)
        self.keep = keep
        self._mem: LRU[Cell, Detections] = LRU(keep)  # the last ``keep`` cells read
        self._cut_locks: dict[tuple[str, str], threading.Lock] = {}

    def missing(self, methods: Iterable[str] | None = None, protocols: Iterable[str] | None = None,
                percentiles: Iterable[float] | None = None) -> list[Cell]:
        """Cells not stored yet among the given ones (default: the run's methods, protocols, percentiles)."""
        ms = self.cfg.methods if methods is None else tuple(methods)
        prs = self.cfg.protocols if protocols is None else tuple(protocols)
        ps = all_percentiles(self.cfg) if percentiles is None else tuple(as_cut(p) for p in percentiles)
        return self.missing_cells(Cell.of(m, pr, p) for m in ms for pr in prs for p in ps)

    def missing_cells(self, cells: Iterable[Cell]) -> list[Cell]:
        """The given cells not stored yet, in their order."""
        return [c for c in cells if not self.cells.has(c)]

    def __getitem__(self, cell: Cell) -> Detections:
        return self.get(cell)

    def get(self, cell: Cell) -> Detections:
        """The boxes of one cell, cut and stored first when missing."""
        hit = self._mem.get(cell)
        if hit is not None:
            return hit
        det = self.cells.read(cell)
        if det is None:
            self.cells.discard(cell)  # a damaged cell is cut again
            self.ensure_cells([cell])
            det = self.cells.read(cell)
            if det is None:
                raise OSError(f"box cell {self.cells.path(cell)} could not be read back after it was written")
        self._mem.put(cell, det)
        return det

    def ensure(self, methods: Iterable[str] | None = None, protocols: Iterable[str] | None = None,
               percentiles: Iterable[float] | None = None) -> int:
        """Cut and store every missing cell among the given ones, one pass per method and set of missing
        percentiles (protocols missing the same ones share it: cut_boxes cuts the present pairs' maps once, with
        the open ones); returns the number of cells cut."""
        return self.ensure_cells(self.missing(methods, protocols, percentiles))

    def ensure_cells(self, cells: Iterable[Cell]) -> int:
        """Cut and store every missing cell among ``cells``, as :meth:`ensure` does (one pass per method and set of
        missing cuts); returns the number of cells cut."""
        todo: dict[str, dict[str, list[float]]] = {}
        for c in dict.fromkeys(self.missing_cells(cells)):  # each cell once
            todo.setdefault(c.method, {}).setdefault(c.protocol.name, []).append(c.cut)
        n = 0
        if not todo:
            return 0
        maps = maps_per_protocol(self.dataset, self.gs.rows, len(self.gs.classes))
        total = sum(maps[pr] for by_proto in todo.values() for pr in by_proto)
        n_ps = len({p for by_proto in todo.values() for ps in by_proto.values() for p in ps})
        with self.bars.phase(f"boxes ({len(todo)} methods x {'+'.join(sorted({pr for b in todo.values() for pr in b}))}"
                             f", {n_ps} percentiles)", total, "map"):
            n = self._cut(todo)
        return n

    def _cut(self, todo: dict[str, dict[str, list[float]]]) -> int:
        n = 0
        for m, by_proto in todo.items():
            for prs, ps in _same_percentiles(by_proto):
                locks = [self._cut_locks.setdefault((m, pr), threading.Lock()) for pr in sorted(prs)]
                for lock in locks:  # always taken in the same order: no two threads wait on each other
                    lock.acquire()
                try:
                    # another thread may have cut some of them meanwhile
                    left = {pr: [p for p in ps if not self.cells.has(Cell.of(m, pr, p))] for pr in prs}
                    for pr_group, ps_left in _same_percentiles(left):
                        cut = cut_boxes(self.cfg, self.dataset, self.gs, self.workers, self.bars, methods=(m,),
                                        protocols=pr_group, percentiles=ps_left)
                        for cell, det in cut.items():
                            self.cells.write(cell, det, len(self.gs.classes))
                        n += len(cut)
                finally:
                    for lock in reversed(locks):
                        lock.release()
        return n


def _same_percentiles(left: dict[str, list[float]]) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """Protocols grouped by the percentiles they still miss (none missing: left out)."""
    groups: dict[tuple[float, ...], list[str]] = {}
    for pr, ps in left.items():
        if ps:
            groups.setdefault(tuple(ps), []).append(pr)
    return [(tuple(prs), ps) for ps, prs in groups.items()]
