"""A run: one configuration, its stored grids, its boxes and every number derived from them.

``Run.open(cfg)`` is what the CLI, the dashboard and the tests call. It computes only what the run store
lacks; boxes, sweeps and quality are cached in the run's folder (``runs/<run_hash>/``) so that reopening a
finished run does no work beyond reading files.
"""

from __future__ import annotations

import datetime as _dt
import json
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from surgery_core.data.datasets import Dataset
from surgery_core.data.detections import Detections
from surgery_core.data.images import read_image
from surgery_core.eval.ap import APResult, VocMatch, evaluate, voc_match
from surgery_core.eval.boxes import BoxParams, Cut, boxes_from_grid, cut_sort_key
from surgery_core.eval.protocols import PRESENT, Cell, ProtocolLike, protocol
from surgery_core.eval.quality import aggregate_quality, quality_records
from surgery_core.eval.corloc import CorLocResult, corloc
from surgery_core.eval.results import (APTables, CorLocTables, MethodQuality, QualityTables, SizeAPTables, Sweep,
                                       SweepCell)
from surgery_core.errors import EmptyRunError
from surgery_core.files import write_json
from surgery_core.model.identity import RANDOM_WEIGHTS_NOTE, is_random_weights
from surgery_core.progress import QUIET, Progress
from surgery_core.run.boxcells import RunBoxes, box_key
from surgery_core.run.config import RunConfig
from surgery_core.run.engine import (ProgressFn, compute_grids, load_dataset, require_images,
                                     resolve_model)
from surgery_core.run.evaluation import (ap_by_size, ap_tables, corloc_tables, ground_truth_for,
                                         sweep_cuts, sweep_of, sweep_table)
from surgery_core.run.grids import GridSet
from surgery_core.run.store import RunStore, default_store

SWEEP_PARTS = "sweep"  # run-folder subfolder: one JSON per (method, protocol) of the sweep
#: What a run computes once and keeps in its folder as one file, by name: the file that holds it. (Its boxes are
#: kept cell by cell in the run store, see :mod:`surgery_core.run.boxcells`.)
PRODUCT_FILES = {"ap_tables": "ap_tables.json", "sweep": "sweep.json", "quality": "quality.json",
                 "corloc": "corloc.json", "ap_by_size": "ap_by_size.json"}
PAIR_FLOATS = ("energy", "gt_mean", "gt_max")  # the columns of Run.pair_quality a null may stand in (NaN)
#: Every product :meth:`Run.is_cached` knows.
PRODUCTS = ("boxes", *PRODUCT_FILES)


class Run:
    """Everything one run configuration yields. Build with :meth:`open`."""

    def __init__(self, cfg: RunConfig, store: RunStore, dataset: Dataset, grids: GridSet, model_identity: dict,
                 model_note: str, loaded=None, bars: Progress = QUIET, random_weights: bool = False):
        self.cfg, self.store, self.dataset, self.grids = cfg, store, dataset, grids
        self.model_identity, self.model_note = model_identity, model_note
        self._loaded = loaded
        self.bars = bars  # where phases computed later (boxes, AP, sweep, quality) show their progress
        self._allow_random = random_weights  # permission to reload an architecture without a checkpoint
        self.run_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def open(cls, cfg: RunConfig | None = None, store: RunStore | None = None, *, progress: ProgressFn | None = None,
             device=None, workers: int | None = None, batch_size: int = 64, show_bar: bool = False,
             loaded=None, random_weights: bool = False) -> "Run":
        """Load the dataset and model, compute the grids the store lacks, write ``run.json``.

        loaded: an already loaded model for ``cfg.model`` (the dashboard keeps one per process).
        show_bar: every phase that takes time (scenes, dataset, model, text features, heatmaps, and later
        boxes, AP, sweep, quality) shows a bar or a status line on stderr.
        random_weights: allow an architecture without a checkpoint (tests only; see :func:`load_model`).
        """
        cfg = cfg or RunConfig()
        store = store or default_store()
        bars = Progress(show_bar)
        # The model first: a bad checkpoint is refused before the demo scenes are generated or DIOR is read.
        loaded = loaded or resolve_model(cfg, device, random_weights=random_weights, bars=bars)
        dataset = load_dataset(cfg, bars)
        require_images(cfg, dataset)  # an empty split or no image file: an error, before any work
        grids = compute_grids(cfg, dataset, loaded, store, batch_size=batch_size, workers=workers,
                              progress=progress, show_bar=show_bar)
        if not len(grids.rows):
            reasons = sorted({s["reason"] for s in grids.skipped})
            raise EmptyRunError(cfg.data.root or dataset.name, f"none of the {len(dataset)} images could be read "
                                f"({'; '.join(reasons[:3])}): nothing to compute")
        note = " ".join(n for n in (model_data_note(cfg, loaded.identity), loaded.note) if n)
        run = cls(cfg, store, dataset, grids, loaded.identity, note, loaded, bars, random_weights)
        write_json(run.run_dir / "config.json", cfg.to_file_dict())
        write_json(run.run_dir / "run.json", run.summary())
        return run

    @classmethod
    def open_stored(cls, ref: str, store: RunStore | None = None, **kwargs) -> "Run":
        """Reopen a stored run by its hash, a unique prefix of it, or its folder name (:func:`stored.resolve
        <surgery_core.run.stored.resolve>`), with the configuration it was stored with; ``kwargs`` go to
        :meth:`open`. Its grids are read from the store; a run whose checkpoint file has changed since is refused
        (its numbers would come from another model)."""
        from pydantic import ValidationError

        from surgery_core.errors import InputError
        from surgery_core.run.stored import list_stored, resolve

        store = store or default_store()
        found = resolve(store, ref, list_stored(store, products=False))
        try:
            cfg = RunConfig.model_validate(found.config)
        except ValidationError as exc:
            raise InputError(found.folder / "run.json", f"not a configuration this version reads "
                                                         f"({exc.error_count()} problems, first: "
                                                         f"{exc.errors()[0]['msg']})") from None
        kwargs.setdefault("random_weights", found.random_weights)
        run = cls.open(cfg, store, **kwargs)
        if run.run_dir.name != found.name:
            raise InputError(cfg.model.checkpoint, f"the checkpoint's content has changed since run {found.name} "
                                                   f"was stored (now {run.run_dir.name}): its numbers were not "
                                                   "computed with this file")
        return run

    @property
    def model_info(self) -> dict:
        """The model as results name it: what identifies its outputs (architecture, QuickGELU, checkpoint sha256)
        and, when the run names it so, its catalog or registered name (not part of the heatmap key: the same file
        gives the same grids by any name)."""
        return self.model_identity | ({"name": self.cfg.model.name} if self.cfg.model.name else {})

    @property
    def run_hash(self) -> str:
        return self.cfg.run_hash

    @property
    def run_dir(self) -> Path:
        # The heatmap key carries the checkpoint's content hash: a checkpoint replaced at the same path must
        # not be served the boxes and metrics cached for the old one.
        return self.store.run_dir(f"{self.run_hash}-{self.grids.key[:8]}")

    @property
    def label(self) -> str:
        """The run's label ("" when none), set with ``surgery runs label`` or on the Runs page."""
        from surgery_core.run.stored import read_label

        return read_label(self.run_dir)[0]

    def title(self) -> str:
        """``<run hash> · <label>`` (the hash alone without a label): how captions and reports name the run."""
        label = self.label
        return f"{self.run_hash} · {label}" if label else self.run_hash

    @property
    def classes(self) -> tuple[str, ...]:
        return self.grids.classes

    @property
    def random_weights(self) -> bool:
        """The run's model has random weights (no checkpoint loaded): its numbers mean nothing. The one fact every
        product reads (:func:`surgery_core.model.identity.is_random_weights` of the model identity)."""
        return is_random_weights(self.model_identity)

    def summary(self) -> dict:
        """What identifies and describes the run (``run.json``)."""
        return {
            "run_hash": self.run_hash, "heatmap_key": self.grids.key, "config": self.cfg.to_file_dict(),
            "model": self.model_info, "dataset": self.dataset.name, "split": self.dataset.split,
            "images": len(self.dataset), "images_with_grids": int(len(self.grids.rows)),
            "skipped_images": self.grids.skipped, "skipped_annotations": self.dataset.report.to_dict()["skipped_files"],
            "computed_now": self.grids.computed, "reused": self.grids.reused, "model_note": self.model_note,
            "random_weights": self.random_weights, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    @property
    def loaded(self):
        """The model (loaded lazily when a run was reopened without it; needed only for new images)."""
        if self._loaded is None:
            self._loaded = resolve_model(self.cfg, random_weights=self._allow_random)
        return self._loaded

    def is_cached(self, product: str) -> bool:
        """Whether ``product`` (one of :data:`PRODUCTS`: boxes, ap_tables, sweep, quality, ...) is there without
        computing: for the tables, their file in the run folder; for the boxes, every cell the reports need
        (:meth:`report_percentiles`, each method and protocol) in the run store."""
        if product not in PRODUCTS:
            raise KeyError(f"unknown run product {product!r}; one of {', '.join(PRODUCTS)}")
        if product == "boxes":  # asking does not load the box store (is_loaded stays as it was)
            boxes = self.__dict__.get("boxes") or self._box_store()
            return not boxes.missing(percentiles=self.report_percentiles())
        return (self.run_dir / PRODUCT_FILES[product]).is_file()

    def is_loaded(self, product: str) -> bool:
        """Whether ``product``'s handle is in this process's memory (only the boxes' is kept: the cell store,
        whose last cells read stay in memory; the tables are read from their file on each call)."""
        if product not in PRODUCTS:
            raise KeyError(f"unknown run product {product!r}; one of {', '.join(PRODUCTS)}")
        return product == "boxes" and "boxes" in self.__dict__  # where cached_property keeps its value

    # ------------------------------------------------------------------------------------------ boxes
    @cached_property
    def boxes(self) -> RunBoxes:
        """Boxes per (method, protocol, percentile) cell, cut on first use and kept as columns in the run store
        (``boxes/<box key>/``, shared by runs whose boxes are the same; see :mod:`surgery_core.run.boxcells`)."""
        return self._box_store()

    def _box_store(self) -> RunBoxes:
        return RunBoxes(self.cfg, self.dataset, self.grids, self.store.root / "boxes" / box_key(self.cfg, self.grids),
                        bars=self.bars)

    def report_percentiles(self) -> tuple[float, ...]:
        """Percentiles whose boxes the reports need: the run's own and the sweep's."""
        return tuple(sorted({self.cfg.boxes.cut, *map(float, self.cfg.sweep_percentiles)}, key=cut_sort_key))

    def ensure_boxes(self, percentiles: tuple[float, ...] | None = None) -> int:
        """Cut every missing cell of the run's methods and protocols at ``percentiles`` (default: what the reports
        need), one pass over each method's maps (:meth:`RunBoxes.ensure`); returns the number of cells cut."""
        return self.boxes.ensure(percentiles=self.report_percentiles() if percentiles is None else percentiles)

    @cached_property
    def gt(self) -> Detections:
        """Ground truth of the images that have grids."""
        return ground_truth_for(self.dataset, self.grids.rows)

    def detections(self, method: str, protocol: ProtocolLike, percentile: Cut) -> Detections:
        """Boxes of one method and protocol at a cut (percentile or box rule), the run's :class:`Cell`
        ``(method, protocol, cut)``: cut and stored on first use, then read from the run store."""
        return self.boxes[Cell.of(method, protocol, percentile)]

    @lru_cache(maxsize=64)
    def match(self, method: str, protocol: str, percentile: float) -> VocMatch:
        """VOC matching of the cached boxes of one method, protocol and percentile (any IoU, either interp)."""
        return voc_match(self.gt, self.detections(method, protocol, percentile))

    @lru_cache(maxsize=256)
    def ap(self, method: str, protocol: str, interp: str, percentile: float, iou: float | tuple[float, ...],
           area: str | None = None) -> APResult:
        """AP of one method and protocol from cached boxes (COCO: pass a tuple of IoUs for AP@[.5:.95]).

        VOC interps reuse the matching of the same boxes: another IoU, interpolation or object size costs only the
        AP. area: None (all objects) or "small", "medium", "large" (COCO's buckets, :mod:`surgery_core.eval.ap`).
        """
        det = self.detections(method, protocol, percentile)
        match = None if interp == "coco" else self.match(method, protocol, percentile)
        return evaluate(self.gt, det, len(self.classes), iou, interp, match=match, area=area)

    @lru_cache(maxsize=256)
    def corloc_at(self, method: str, protocol: str, percentile: float, iou: float | tuple[float, ...] = 0.5
                  ) -> CorLocResult:
        """CorLoc (:mod:`surgery_core.eval.corloc`) of one method and protocol from cached boxes, at any IoU."""
        return corloc(self.gt, self.detections(method, protocol, percentile), len(self.classes), iou)

    # ------------------------------------------------------------------------------------------ tables
    def _cached_json(self, name: str, compute):
        path = self.run_dir / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                pass
        doc = compute()
        write_json(path, doc)
        return doc

    def ap_tables(self) -> APTables:
        """AP per method, protocol and interpolation at the run's percentile (``ap_tables.json``)."""
        def compute():
            self.boxes.ensure(percentiles=[self.cfg.boxes.cut])
            return ap_tables(self.cfg, self.dataset, self.grids, self.boxes, bars=self.bars).to_dict()
        return APTables.from_dict(self._cached_json("ap_tables.json", compute))

    def corloc(self) -> CorLocTables:
        """CorLoc per method and protocol at the run's box rule, at the run's IoUs and 0.5 (``corloc.json``)."""
        def compute():
            self.boxes.ensure(percentiles=[self.cfg.boxes.cut])
            return corloc_tables(self.cfg, self.dataset, self.grids, self.boxes).to_dict()
        return CorLocTables.from_dict(self._cached_json("corloc.json", compute))

    def ap_by_size(self) -> SizeAPTables:
        """AP of small, medium and large objects per method, protocol and interpolation at the run's box rule, and
        the ground truth's size mix (``ap_by_size.json``)."""
        def compute():
            self.boxes.ensure(percentiles=[self.cfg.boxes.cut])
            return ap_by_size(self.cfg, self.dataset, self.grids, self.boxes, bars=self.bars).to_dict()
        return SizeAPTables.from_dict(self._cached_json("ap_by_size.json", compute))

    def _sweep_part_file(self, method: str, protocol: str, rule: str = "percentile") -> Path:
        return self.run_dir / SWEEP_PARTS / (f"{method}.{protocol}.json" if rule == "percentile" else
                                             f"{method}.{protocol}.{rule}.json")

    def has_sweep_part(self, method: str, protocol: str, rule: str = "percentile") -> bool:
        """Whether :meth:`sweep_part` of this method and protocol is stored (asking for it costs a file read)."""
        return self._sweep_part_file(method, protocol, rule).is_file()

    def sweep_part(self, method: str, protocol: str, rule: str = "percentile") -> dict[str, SweepCell]:
        """The sweep of one method and protocol, ``{interp: SweepCell}`` as in :meth:`sweep`'s table (cached in
        ``sweep/<method>.<protocol>.json``; its box cells are cut first when missing). rule: "fixed" sweeps the
        fixed-value rule over the run's ``sweep_fixed_values`` instead (``sweep/<method>.<protocol>.fixed.json``;
        rows and ``best.percentile`` are then values of the 0-1 map)."""
        def compute():
            self.boxes.ensure([method], [protocol], sweep_cuts(self.cfg, rule))
            sw = sweep_table(self.cfg, self.dataset, self.grids, self.boxes, bars=self.bars, methods=(method,),
                             protocols=(protocol,), rule=rule)
            return {it: c.to_dict() for it, c in sw.table[method][protocol].items()}
        doc = self._cached_json(str(self._sweep_part_file(method, protocol, rule).relative_to(self.run_dir)), compute)
        return {it: SweepCell.from_dict(c) for it, c in doc.items()}

    def sweep(self) -> Sweep:
        """mAP over percentile x IoU per method, protocol and VOC interpolation (``sweep.json``), assembled from
        :meth:`sweep_part` of every method and protocol."""
        def compute():
            self.boxes.ensure(percentiles=self.cfg.sweep_percentiles)
            cfg = self.cfg
            parts = [(m, pr) for m in cfg.methods for pr in cfg.protocols if not self.has_sweep_part(m, pr)]
            with self.bars.phase(f"sweep ({len(cfg.sweep_percentiles)} percentiles x {len(cfg.iou_thresholds)} "
                                 f"IoUs, {len(parts)} method x protocol)", len(parts) * len(cfg.sweep_percentiles),
                                 "method x protocol x percentile"):
                table = {m: {pr: self.sweep_part(m, pr) for pr in cfg.protocols} for m in cfg.methods}
            return sweep_of(cfg, table).to_dict()
        return Sweep.from_dict(self._cached_json("sweep.json", compute))

    def quality(self) -> QualityTables:
        """The seed's heatmap-quality analysis per method (``quality.json``)."""
        tolerance = self.cfg.pointing_tolerance_px_at_224

        def compute():
            sizes = self.image_sizes()
            out = {}
            with self.bars.bar(f"quality at {len(self.cfg.quality_percentiles)} percentiles", len(self.cfg.methods),
                               "method") as bar:
                for m in self.cfg.methods:
                    recs = quality_records(self.grids.grids[m], sizes, self.gt, self.cfg.boxes,
                                           self.cfg.quality_percentiles, image_ids=self.grids.rows,
                                           tolerance_px_at_224=tolerance)
                    out[m] = MethodQuality.from_dict(aggregate_quality(recs, self.classes))
                    bar.update(1)
            return QualityTables(list(self.cfg.quality_percentiles), tolerance,
                                 "raw similarity (before min-max), upsampled map", out).to_dict()
        return QualityTables.from_dict(self._cached_json("quality.json", compute))

    def pair_quality(self, method: str):
        """:func:`surgery_core.run.pairs.pair_quality` of ``method`` (a DataFrame per (image, class) pair), kept in
        the run folder (``pair_quality/<method>.json``): a third of a second per method of the demo run to compute,
        which the dashboard's Heatmap quality page paid on its first visit in every new process."""
        import pandas as pd

        from surgery_core.run.pairs import pair_quality

        def compute():
            df = pair_quality(self, method)
            return {c: [None if isinstance(v, float) and v != v else v for v in df[c].tolist()] for c in df.columns}
        doc = self._cached_json(f"pair_quality/{method}.json", compute)
        return pd.DataFrame({c: pd.Series(v, dtype=float if c in PAIR_FLOATS else None) for c, v in doc.items()})

    # ------------------------------------------------------------------------------------------ one image
    def image_sizes(self) -> np.ndarray:
        return np.asarray([(self.dataset.images[i].width, self.dataset.images[i].height) for i in self.grids.rows],
                          np.int64).reshape(-1, 2)

    def row_of(self, image_index: int) -> int | None:
        """Row in the grid set of a dataset image index (None when the image was skipped)."""
        hit = np.nonzero(self.grids.rows == image_index)[0]
        return int(hit[0]) if len(hit) else None

    def image(self, image_index: int) -> np.ndarray:
        rec = self.dataset.images[image_index]
        if rec.path is None:
            raise FileNotFoundError(f"image {rec.image_id} is not present next to its annotation")
        return read_image(rec.path)

    def grid(self, method: str, image_index: int, class_index: int) -> np.ndarray:
        """Raw similarity grid ``[gh, gw]`` of one image and class."""
        return self.grids.grids[method][self.row_of(image_index), class_index]

    def boxes_for(self, method: str, image_index: int, class_index: int, percentile: Cut,
                  proto: ProtocolLike = PRESENT) -> Detections:
        """Boxes of one image and class at any cut, as :class:`Detections` (computed live: one map, microseconds).
        A protocol that scores only annotated classes cuts none for a class the image lacks."""
        rec = self.dataset.images[image_index]
        row = self.row_of(image_index)
        pr = protocol(proto)
        params: BoxParams = pr.box_params(self.cfg.boxes).with_cut(percentile)
        if not pr.all_classes and class_index not in rec.labels:
            return Detections.empty()
        grid = self.grids.grids[method][row]
        if params.refine == "pamr":
            from surgery_core.data.images import squash
            from surgery_core.model.refine import refine_grid

            size = self.grids.input_size
            grid = refine_grid(grid, squash(self.image(image_index), size), size)
        xyxy, score = boxes_from_grid(grid[class_index], rec.width, rec.height, params,
                                      float(self.grids.probs[row, class_index]))
        n = len(score)
        return Detections(xyxy, score, np.full(n, class_index, np.int64), np.full(n, image_index, np.int64))


def model_data_note(cfg: RunConfig, identity: dict | None = None) -> str:
    """A plain warning when the model's numbers cannot be read as findings: random weights (``identity`` with no
    checkpoint), or a model that cannot read the data (the demo model has never seen real imagery)."""
    from surgery_core.plugins import shipped_model

    if is_random_weights(identity):
        return RANDOM_WEIGHTS_NOTE
    shipped = shipped_model(cfg.model.arch)
    if shipped is not None and cfg.data.kind != shipped.trained_on:
        return shipped.note_off_domain
    return ""
