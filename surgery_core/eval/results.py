"""Typed results of a run: the AP tables, the threshold sweep and the heatmap-quality tables.

Callers read attributes (``tables.entry("vv_mixed", "present", "voc07").map_per_iou["0.5"]``); each type's
``to_dict()`` defines its JSON file (``ap_tables.json`` / ``map_results.json``, ``sweep.json`` /
``sweep_results.json``, ``quality.json`` / ``heatmap_quality_analysis.json``) key for key and in order, and
``from_dict()`` reads it back, so ``from_dict(d).to_dict() == d``. ``to_frame()`` gives the one flat (long)
pandas table of each, the table the CSV files and the dashboard show.

Values are fractions in [0, 1] (AP, mAP, pointing-game accuracy); ``None`` stands for "not defined" (no ground
truth), as in the files. IoU thresholds are keyed by :func:`iou_key` text (``"0.5"``) wherever the files key
them. numpy and pandas only (pandas imported when a frame is asked for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

#: Column of the per-class walk and of :meth:`APTables.to_frame` for the mean over the run's IoU thresholds.
MEAN_OVER_IOUS = "mean"
#: Column for COCO's AP@[.50:.95] (the COCO interpolation only).
COCO_50_95 = "0.50:0.95"


def iou_key(t: float) -> str:
    """Short stable text for an IoU threshold, e.g. 0.6000000000000001 -> "0.6" (how the files key them)."""
    return f"{t:.6g}"


def none_if_nan(v) -> float | None:
    """A float, or None for NaN (JSON has no NaN)."""
    v = float(v)
    return None if math.isnan(v) else v


def nested_none_if_nan(a) -> Any:
    """An array (any shape) as nested lists of floats with NaN as None; a 0-d array as one value."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        return none_if_nan(arr)
    return [nested_none_if_nan(x) for x in arr]


def _rows_frame(columns: list[str], rows: list[list], keep_none: str | None = None):
    """A frame of ``rows``; column ``keep_none`` keeps None (object dtype) where pandas would write NaN."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    if keep_none is not None:
        frame[keep_none] = pd.Series([r[columns.index(keep_none)] for r in rows], dtype=object, index=frame.index)
    return frame


# ============================================================================================ AP tables
@dataclass(frozen=True)
class ClassAP:
    """AP of one class: ``ap`` the mean over the IoU thresholds, ``ap_per_iou`` per threshold key (None without
    ground truth); ``n_gt`` ground-truth boxes, ``n_det`` detections of the class."""

    ap: float | None
    ap_per_iou: dict[str, float | None]
    n_gt: int
    n_det: int

    def to_dict(self) -> dict:
        return {"AP": self.ap, "AP_per_iou": dict(self.ap_per_iou), "n_gt": self.n_gt, "n_det": self.n_det}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassAP":
        return cls(d["AP"], dict(d["AP_per_iou"]), d["n_gt"], d["n_det"])


@dataclass(frozen=True)
class APEntry:
    """AP of one method, protocol and interpolation at one percentile.

    ``map`` is the mean over classes with ground truth and over ``ious``; ``map_per_iou`` per threshold key.
    COCO only: ``map_50_95`` and ``per_class_50_95``, COCO's headline AP over .50:.05:.95.
    """

    interp: str
    ious: tuple[float, ...]
    map: float | None
    map_per_iou: dict[str, float | None]
    n_classes_with_gt: int
    per_class: dict[str, ClassAP]
    note: str
    map_50_95: float | None = None
    per_class_50_95: dict[str, float | None] | None = None

    @classmethod
    def from_ap(cls, res, class_names, note: str, coco_head=None) -> "APEntry":
        """From an :class:`~surgery_core.eval.ap.APResult` (and, for COCO, the one at .50:.95)."""
        return cls.from_dict({"per_iou": res.to_dict(class_names), "note": note} | ({} if coco_head is None else {
            "mAP_50_95": none_if_nan(coco_head.mAP),
            "per_class_50_95": {c: none_if_nan(v) for c, v in zip(class_names, coco_head.per_class_ap)}}))

    def class_ap(self, cls: str, column: str) -> float | None:
        """AP of one class in one column: an IoU key, :data:`MEAN_OVER_IOUS` or :data:`COCO_50_95`."""
        if column == MEAN_OVER_IOUS:
            return self.per_class[cls].ap
        if column == COCO_50_95:
            return (self.per_class_50_95 or {}).get(cls)
        return self.per_class[cls].ap_per_iou.get(column)

    def to_dict(self) -> dict:
        out = {"per_iou": {"interp": self.interp, "iou": list(self.ious), "mAP": self.map,
                           "mAP_per_iou": dict(self.map_per_iou), "n_classes_with_gt": self.n_classes_with_gt,
                           "per_class": {c: v.to_dict() for c, v in self.per_class.items()}},
               "note": self.note}
        if self.interp == "coco":
            out["mAP_50_95"] = self.map_50_95
            out["per_class_50_95"] = dict(self.per_class_50_95 or {})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "APEntry":
        r = d["per_iou"]
        return cls(interp=r["interp"], ious=tuple(r["iou"]), map=r["mAP"], map_per_iou=dict(r["mAP_per_iou"]),
                   n_classes_with_gt=r["n_classes_with_gt"],
                   per_class={c: ClassAP.from_dict(v) for c, v in r["per_class"].items()}, note=d["note"],
                   map_50_95=d.get("mAP_50_95"), per_class_50_95=d.get("per_class_50_95"))


@dataclass(frozen=True)
class APTables:
    """AP of every method, protocol and interpolation of a run at one box percentile.

    ``entries[method][protocol][interp]`` (the order of the file); ``protocol_notes`` says what each protocol
    means.
    """

    percentile: float | None
    protocol_notes: dict[str, str]
    entries: dict[str, dict[str, dict[str, APEntry]]]
    box_rule: str | None = None  # a rule other than the percentile (then ``percentile`` is None), in words

    @property
    def methods(self) -> list[str]:
        return list(self.entries)

    def entry(self, method: str, protocol: str, interp: str) -> APEntry:
        return self.entries[method][protocol][interp]

    def __iter__(self) -> Iterator[tuple[str, str, str, APEntry]]:
        """(method, protocol, interp, entry) in file order."""
        for m, by_proto in self.entries.items():
            for pr, by_interp in by_proto.items():
                for it, e in by_interp.items():
                    yield m, pr, it, e

    def columns(self, interp: str) -> list[str]:
        """The per-class columns of one interpolation: each IoU key, the mean, and COCO's .50:.95."""
        first = next(e for _, _, it, e in self if it == interp)
        return list(first.map_per_iou) + [MEAN_OVER_IOUS] + ([COCO_50_95] if interp == "coco" else [])

    def per_class(self, protocol: str, interp: str, column: str, methods: list[str], classes: list[str]
                  ) -> list[tuple[str, int, list[float | None]]]:
        """The per-class walk: (class, GT boxes, AP of each method in ``column``) per class of ``classes``."""
        first = self.entry(methods[0], protocol, interp)
        return [(c, first.per_class[c].n_gt, [self.entry(m, protocol, interp).class_ap(c, column) for m in methods])
                for c in classes]

    def to_frame(self):
        """mAP as a long table: method, protocol, interp, iou (an IoU key, ``mean`` or ``0.50:0.95``),
        percentile, mAP (None where undefined); one row per value, in file order."""
        rows = []
        for m, pr, it, e in self:
            rows += [[m, pr, it, k, self.percentile, v] for k, v in e.map_per_iou.items()]
            rows.append([m, pr, it, MEAN_OVER_IOUS, self.percentile, e.map])
            if it == "coco":
                rows.append([m, pr, it, COCO_50_95, self.percentile, e.map_50_95])
        return _rows_frame(["method", "protocol", "interp", "iou", "percentile", "mAP"], rows, keep_none="mAP")

    def to_dict(self) -> dict:
        return {"percentile": self.percentile, "protocol_notes": dict(self.protocol_notes),
                "tables": {m: {pr: {it: e.to_dict() for it, e in bi.items()} for pr, bi in bp.items()}
                           for m, bp in self.entries.items()}} | ({} if self.box_rule is None else
                                                                  {"box_rule": self.box_rule})

    @classmethod
    def from_dict(cls, d: dict) -> "APTables":
        return cls(d["percentile"], dict(d["protocol_notes"]),
                   {m: {pr: {it: APEntry.from_dict(e) for it, e in bi.items()} for pr, bi in bp.items()}
                    for m, bp in d["tables"].items()}, d.get("box_rule"))

    @property
    def cut_text(self) -> str:
        """The box rule of the tables in words: ``percentile 90``, ``Otsu``, ``fixed value 0.5``."""
        return self.box_rule or f"percentile {self.percentile:g}"


# ============================================================================================ sweep
@dataclass(frozen=True)
class SweepBest:
    """The highest mAP over the percentile x IoU grid and where it lies."""

    percentile: float
    iou: float
    map: float | None


@dataclass(frozen=True)
class SweepCell:
    """One method, protocol and interpolation over the grid: ``map[p][t]`` and ``per_class[class][p][t]``
    (None where undefined), indexed like :attr:`Sweep.percentiles` and :attr:`Sweep.ious`."""

    map: list[list[float | None]]
    per_class: dict[str, list[list[float | None]]]
    best: SweepBest

    def to_dict(self) -> dict:
        return {"mAP": self.map, "per_class": self.per_class,
                "best": {"percentile": self.best.percentile, "iou": self.best.iou, "mAP": self.best.map}}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepCell":
        b = d["best"]
        return cls(d["mAP"], d["per_class"], SweepBest(b["percentile"], b["iou"], b["mAP"]))


@dataclass(frozen=True)
class Sweep:
    """mAP over box percentile x IoU threshold, per method, protocol and interpolation
    (``table[method][protocol][interp]``); ``box_note`` says how boxes were cut."""

    percentiles: list[float]
    ious: list[float]
    interps: list[str]
    box_note: str
    table: dict[str, dict[str, dict[str, SweepCell]]]

    def cell(self, method: str, protocol: str, interp: str) -> SweepCell:
        return self.table[method][protocol][interp]

    def to_frame(self):
        """mAP as a long table: method, protocol, interp, percentile, iou, mAP (None where undefined)."""
        rows = [[m, pr, it, pc, iou, cell.map[a][t]]
                for m, bp in self.table.items() for pr, bi in bp.items() for it, cell in bi.items()
                for a, pc in enumerate(self.percentiles) for t, iou in enumerate(self.ious)]
        return _rows_frame(["method", "protocol", "interp", "percentile", "iou", "mAP"], rows, keep_none="mAP")

    def to_dict(self) -> dict:
        return {"percentiles": list(self.percentiles), "ious": list(self.ious), "interps": list(self.interps),
                "box_note": self.box_note,
                "table": {m: {pr: {it: c.to_dict() for it, c in bi.items()} for pr, bi in bp.items()}
                          for m, bp in self.table.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Sweep":
        return cls(list(d["percentiles"]), list(d["ious"]), list(d["interps"]), d["box_note"],
                   {m: {pr: {it: SweepCell.from_dict(c) for it, c in bi.items()} for pr, bi in bp.items()}
                    for m, bp in d["table"].items()})


# ============================================================================================ quality
@dataclass(frozen=True)
class MethodQuality:
    """The heatmap-quality analysis of one method (the keys of
    :func:`~surgery_core.eval.quality.aggregate_quality`): ``by_percentile`` rows (``percentile``,
    ``mean_best_iou``, ``max_best_iou``, ``mean_n_boxes``, ``mean_activation_ratio``, ``per_class``);
    ``gt_response`` in raw similarity; ``pointing_game`` and ``energy_pointing_game`` with ``overall`` (over
    pairs), ``mean_over_classes`` and ``per_class``."""

    n_pairs: int
    percentiles: list[float]
    by_percentile: list[dict]
    gt_response: dict[str, float | None]
    pointing_game: dict
    energy_pointing_game: dict

    def to_dict(self) -> dict:
        return {"n_pairs": self.n_pairs, "percentiles": self.percentiles, "by_percentile": self.by_percentile,
                "gt_response": self.gt_response, "pointing_game": self.pointing_game,
                "energy_pointing_game": self.energy_pointing_game}

    @classmethod
    def from_dict(cls, d: dict) -> "MethodQuality":
        return cls(d["n_pairs"], d["percentiles"], d["by_percentile"], d["gt_response"], d["pointing_game"],
                   d["energy_pointing_game"])


@dataclass(frozen=True)
class QualityTables:
    """Heatmap quality of every method: ``methods[method]``; the pointing game's tolerance in px of a
    224-pixel image; the units of the GT response."""

    percentiles: list[float]
    tolerance_px_at_224: float
    gt_response_units: str
    methods: dict[str, MethodQuality]

    def to_frame(self):
        """The quality rows as a long table: method, percentile, mean/max best-box IoU, boxes per pair,
        activation ratio."""
        keys = ["mean_best_iou", "max_best_iou", "mean_n_boxes", "mean_activation_ratio"]
        rows = [[m, r["percentile"], *(r[k] for k in keys)] for m, q in self.methods.items() for r in q.by_percentile]
        return _rows_frame(["method", "percentile", *keys], rows)

    def to_dict(self) -> dict:
        # The files have always written a whole tolerance as an integer (15, not 15.0).
        tol = self.tolerance_px_at_224
        return {"percentiles": list(self.percentiles),
                "tolerance_px_at_224": int(tol) if float(tol).is_integer() else tol,
                "gt_response_units": self.gt_response_units,
                "methods": {m: q.to_dict() for m, q in self.methods.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "QualityTables":
        return cls(list(d["percentiles"]), d["tolerance_px_at_224"], d["gt_response_units"],
                   {m: MethodQuality.from_dict(q) for m, q in d["methods"].items()})


# ============================================================================================ CorLoc
@dataclass(frozen=True)
class CorLocEntry:
    """CorLoc of one method and protocol (:mod:`surgery_core.eval.corloc`): ``corloc[iou_key]`` the mean over
    classes that occur in some image; ``per_class[class][iou_key]`` (None for a class in no image); ``n_images``
    the images that contain each class."""

    corloc: dict[str, float | None]
    per_class: dict[str, dict[str, float | None]]
    n_images: dict[str, int]

    @classmethod
    def from_result(cls, res, class_names) -> "CorLocEntry":
        """From a :class:`~surgery_core.eval.corloc.CorLocResult`."""
        keys = [iou_key(t) for t in res.iou_thresholds]
        return cls({k: none_if_nan(v) for k, v in zip(keys, res.mean)},
                   {c: {k: none_if_nan(res.corloc[t, j]) for t, k in enumerate(keys)}
                    for j, c in enumerate(class_names)},
                   {c: int(res.n_images[j]) for j, c in enumerate(class_names)})

    def to_dict(self) -> dict:
        return {"CorLoc": dict(self.corloc), "per_class": {c: dict(v) for c, v in self.per_class.items()},
                "n_images": dict(self.n_images)}

    @classmethod
    def from_dict(cls, d: dict) -> "CorLocEntry":
        return cls(dict(d["CorLoc"]), {c: dict(v) for c, v in d["per_class"].items()}, dict(d["n_images"]))


@dataclass(frozen=True)
class CorLocTables:
    """CorLoc of every method and protocol of a run at its box rule (``corloc.json``): ``entries[method][protocol]``
    at each of ``ious`` (the run's IoU thresholds and 0.5, the papers' threshold); ``box_note`` says how boxes were
    cut, ``note`` what CorLoc is.

    Read it as ``run.corloc().entry("vv_mixed", "present").corloc["0.5"]``."""

    ious: list[float]
    box_note: str
    note: str
    entries: dict[str, dict[str, CorLocEntry]]

    def entry(self, method: str, protocol: str) -> CorLocEntry:
        return self.entries[method][protocol]

    def to_frame(self):
        """CorLoc as a long table: method, protocol, iou, CorLoc (None where undefined)."""
        rows = [[m, pr, k, v] for m, bp in self.entries.items() for pr, e in bp.items() for k, v in e.corloc.items()]
        return _rows_frame(["method", "protocol", "iou", "CorLoc"], rows, keep_none="CorLoc")

    def to_dict(self) -> dict:
        return {"ious": list(self.ious), "box_note": self.box_note, "note": self.note,
                "tables": {m: {pr: e.to_dict() for pr, e in bp.items()} for m, bp in self.entries.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "CorLocTables":
        return cls(list(d["ious"]), d["box_note"], d["note"],
                   {m: {pr: CorLocEntry.from_dict(e) for pr, e in bp.items()} for m, bp in d["tables"].items()})


# ============================================================================================ AP by object size
@dataclass(frozen=True)
class SizeAPTables:
    """AP by object size (``ap_by_size.json``): ``tables[size]`` the :class:`APTables` of one COCO size bucket
    (small, medium, large: :data:`surgery_core.eval.ap.AREA_RANGES`), and ``size_mix[class][size]`` the ground-truth
    boxes of each class in each bucket (a box of exactly 32^2 or 96^2 px^2 counts in both of its buckets, as
    COCOeval's inclusive bounds do)."""

    bounds: dict[str, list[float]]
    size_mix: dict[str, dict[str, int]]
    tables: dict[str, APTables]

    def to_dict(self) -> dict:
        return {"bounds": {s: list(b) for s, b in self.bounds.items()},
                "size_mix": {c: dict(v) for c, v in self.size_mix.items()},
                "tables": {s: t.to_dict() for s, t in self.tables.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "SizeAPTables":
        return cls({s: list(b) for s, b in d["bounds"].items()}, {c: dict(v) for c, v in d["size_mix"].items()},
                   {s: APTables.from_dict(t) for s, t in d["tables"].items()})
