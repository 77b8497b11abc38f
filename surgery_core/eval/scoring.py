"""Scoring an external detection file against a dataset's ground truth: the ``surgery score`` logic.

Accepted detection files (boxes in original-image pixels):

- CSV with the header ``image_id,class,xmin,ymin,xmax,ymax,score`` (columns in any order, extra columns
  ignored). ``class`` is a class name in any spelling :class:`~surgery_core.data.classes.ClassIndex` accepts
  (``storage tank``, ``Storage-Tank``, ``plane`` ...). Boxes are continuous ``xyxy``.
- COCO results JSON: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``. With a
  plain list, ``category_id`` k means the k-th class of the dataset's class list, 1-based (DIOR:
  1 = airplane ... 20 = windmill), which is how DIOR is usually converted to COCO. To use other ids, wrap
  the list as ``{"annotations": [...], "categories": [{"id", "name"}, ...]}``: then ids map through the
  category names (aliases accepted), and an optional ``"images": [{"id", "file_name"}]`` maps numeric
  image ids to file stems. Against a dataset read from a COCO file (``surgery score --coco``), a plain
  list's ``image_id`` and ``category_id`` are that file's own ids, as pycocotools' ``loadRes`` reads them.

Image ids are the dataset's image ids (DIOR: the file stem, ``11726``). A file name (``11726.jpg``) is
accepted for its stem, and a bare integer (``1``, as written by tools that drop leading zeros) for the
purely numeric stem with that value (``00001``) when exactly one stem has it.

Any row that names an unknown image or class, or is malformed (missing field, non-number, NaN or
infinite value, ``xmax < xmin``), raises :class:`~surgery_core.errors.InputError` naming the file and the
line; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from surgery_core.data.classes import ClassIndex
from surgery_core.data.detections import Detections
from surgery_core.data.exchange import CSV_COLUMNS
from surgery_core.errors import InputError
from surgery_core.eval.ap import COCO_IOUS, evaluate



class ScoringDataset(Protocol):
    """What scoring needs from a dataset (:class:`surgery_core.data.datasets.Dataset` has it)."""

    classes: tuple[str, ...]
    images: list

    def ground_truth(self) -> Detections: ...

    def index_of(self, image_id: str) -> int: ...


# ---------------------------------------------------------------------------------------------- reading


class _ImageIds:
    """Resolves the image ids written in a detection file to positions in ``dataset.images``."""

    def __init__(self, dataset: ScoringDataset):
        self.dataset = dataset
        self._cache: dict[Any, int | None] = {}
        self._numeric: dict[int, int | None] | None = None

    def _by_number(self, n: int) -> int | None:
        if self._numeric is None:
            table: dict[int, int | None] = {}
            for i, rec in enumerate(self.dataset.images):
                stem = str(rec.image_id)
                if stem.isdigit():
                    # Two stems with the same value ("1" and "001") make the number ambiguous.
                    table[int(stem)] = None if int(stem) in table else i
            self._numeric = table
        return self._numeric.get(n)

    def _resolve(self, raw: Any) -> int | None:
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            try:
                return self.dataset.index_of(str(raw))
            except KeyError:
                return self._by_number(raw)
        text = str(raw).strip()
        for candidate in (text, Path(text).stem):
            try:
                return self.dataset.index_of(candidate)
            except KeyError:
                pass
        stem = Path(text).stem
        return self._by_number(int(stem)) if stem.isdigit() else None

    def __call__(self, raw: Any) -> int | None:
        key = (type(raw), raw) if isinstance(raw, (int, str)) else None
        if key is not None and key in self._cache:
            return self._cache[key]
        i = self._resolve(raw)
        if key is not None:
            self._cache[key] = i
        return i


def _finite(text: str, what: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return v


def _check_box(x1: float, y1: float, x2: float, y2: float) -> None:
    if x2 < x1:
        raise ValueError(f"xmax {x2:g} < xmin {x1:g}")
    if y2 < y1:
        raise ValueError(f"ymax {y2:g} < ymin {y1:g}")


def _split_name(dataset: ScoringDataset) -> str:
    name, split = getattr(dataset, "name", None), getattr(dataset, "split", None)
    return f"the {split} split of {name}" if name and split else "the dataset"


def read_csv_detections(path: str | Path, dataset: ScoringDataset) -> Detections:
    """Detections from a CSV file (module docstring); image = index into ``dataset.images``."""
    path = Path(path)
    classes = ClassIndex(dataset.classes)
    images = _ImageIds(dataset)
    class_cache: dict[str, int | None] = {}
    rows: list[tuple[float, float, float, float, float, int, int]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = None
            for row in reader:
                if not row or all(not f.strip() for f in row):
                    continue
                if header is None:
                    header = [f.strip().lower() for f in row]
                    missing = [c for c in CSV_COLUMNS if c not in header]
                    if missing:
                        raise InputError(path, f"line {reader.line_num}: header must name the columns "
                                               f"{','.join(CSV_COLUMNS)}; missing {', '.join(missing)}")
                    col = [header.index(c) for c in CSV_COLUMNS]
                    continue
                line = reader.line_num
                if len(row) < len(header):
                    raise InputError(path, f"line {line}: expected {len(header)} fields, found {len(row)}")
                image_raw, class_raw = row[col[0]].strip(), row[col[1]].strip()
                try:
                    x1, y1, x2, y2, s = (_finite(row[c], n) for c, n in zip(col[2:], CSV_COLUMNS[2:]))
                    _check_box(x1, y1, x2, y2)
                except ValueError as exc:
                    raise InputError(path, f"line {line}: {exc}") from None
                if class_raw not in class_cache:
                    class_cache[class_raw] = classes.lookup(class_raw)
                k = class_cache[class_raw]
                if k is None:
                    raise InputError(path, f"line {line}: unknown class {class_raw!r} "
                                           f"(known: {', '.join(dataset.classes)})")
                i = images(image_raw)
                if i is None:
                    raise InputError(path, f"line {line}: unknown image id {image_raw!r} "
                                           f"(not in {_split_name(dataset)})")
                rows.append((x1, y1, x2, y2, s, k, i))
            if header is None:
                raise InputError(path, f"line 1: empty file; expected the header {','.join(CSV_COLUMNS)}")
    except csv.Error as exc:
        raise InputError(path, f"line {reader.line_num}: malformed CSV ({exc})") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise _unreadable(path, exc) from None
    return _to_detections(rows)


def _unreadable(path: Path, exc: UnicodeDecodeError | OSError) -> InputError:
    """The one-line error for a detection file that cannot be read as UTF-8 text."""
    if isinstance(exc, UnicodeDecodeError):
        return InputError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    return InputError(path, f"cannot read ({exc.strerror or exc})")


def _to_detections(rows: list[tuple]) -> Detections:
    if not rows:
        return Detections.empty()
    a = np.asarray(rows, dtype=np.float64)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64), a[:, 6].astype(np.int64))


def _json_entry_line(text: str, n: int, key: str | None) -> int | None:
    """Best-effort line number of entry ``n`` of the results array (only computed for error messages)."""
    dec = json.JSONDecoder()
    if key is None:
        m = re.match(r"\s*\[", text)
    else:
        m = re.search(r'"%s"\s*:\s*\[' % re.escape(key), text)
    if not m:
        return None
    pos = m.end()
    try:
        for _ in range(n + 1):
            while text[pos] in " \t\r\n,":
                pos += 1
            start = pos
            _, pos = dec.raw_decode(text, pos)
    except (ValueError, IndexError):
        return None
    return text.count("\n", 0, start) + 1


def read_coco_detections(path: str | Path, dataset: ScoringDataset) -> Detections:
    """Detections from a COCO results JSON (module docstring); image = index into ``dataset.images``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise _unreadable(path, exc) from None

    images = _ImageIds(dataset)
    key = None
    coco_images = getattr(dataset, "coco_image_ids", None)
    coco_categories = getattr(dataset, "coco_category_ids", None)
    if isinstance(doc, list):
        entries = doc
        if coco_categories is not None:  # the dataset is a COCO file: results name its own ids
            cat_to_class, image_names = dict(coco_categories), dict(coco_images or {})
        else:  # Plain results list: category id k is the k-th class of the dataset, 1-based.
            cat_to_class = {k + 1: k for k in range(len(dataset.classes))}
            image_names = {}
    elif isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        key, entries = "annotations", doc["annotations"]
        cats = doc.get("categories")
        index = ClassIndex(dataset.classes)
        if cats is None:
            cat_to_class = {k + 1: k for k in range(len(dataset.classes))}
        else:
            if not isinstance(cats, list):
                raise InputError(path, "'categories' must be a list of {\"id\", \"name\"}")
            cat_to_class = {}
            for c in cats:
                if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
                    raise InputError(path, f"category {c!r} needs an 'id' and a 'name'")
                k = index.lookup(c["name"])
                if k is None:
                    raise InputError(path, f"category {c['name']!r} (id {c['id']}) is not a class of the "
                                           f"dataset (known: {', '.join(dataset.classes)})")
                cat_to_class[c["id"]] = k
        image_names = {}
        for img in doc.get("images") or []:
            if isinstance(img, dict) and "id" in img and isinstance(img.get("file_name"), str):
                image_names[img["id"]] = Path(img["file_name"]).stem
    else:
        raise InputError(path, "line 1: expected a JSON list of COCO results, or an object with "
                               "'annotations' (and optionally 'categories' and 'images')")

    rows = []
    for n, e in enumerate(entries):
        try:
            if not isinstance(e, dict):
                raise ValueError("entry is not an object")
            for field in ("image_id", "category_id", "bbox", "score"):
                if field not in e:
                    raise ValueError(f"missing {field!r}")
            bbox = e["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4 or any(isinstance(v, (bool, str)) for v in bbox):
                raise ValueError(f"bbox {bbox!r} is not [x, y, w, h]")
            x, y, w, h = (_finite(v, "bbox value") for v in bbox)
            if w < 0 or h < 0:
                raise ValueError(f"bbox {bbox!r} has a negative width or height")
            if isinstance(e["score"], (bool, str)):
                raise ValueError(f"score {e['score']!r} is not a number")
            s = _finite(e["score"], "score")
            cat = e["category_id"]
            k = None if isinstance(cat, bool) else cat_to_class.get(cat)
            if k is None:
                raise ValueError(f"unknown category_id {cat!r} (" + (
                    "not a category of the ground-truth file" if key is None and coco_categories is not None else
                    f"1..{len(dataset.classes)} = {dataset.classes[0]}..{dataset.classes[-1]}"
                    if key is None or doc.get("categories") is None else "not in 'categories'") + ")")
            raw = e["image_id"]
            i = images(image_names[raw]) if raw in image_names else images(raw)
            if i is None:
                raise ValueError(f"unknown image id {raw!r} (not in {_split_name(dataset)})")
        except (ValueError, TypeError) as exc:
            line = _json_entry_line(text, n, key)
            where = f"line {line} (entry {n})" if line is not None else f"entry {n}"
            raise InputError(path, f"{where}: {exc}") from None
        rows.append((x, y, x + w, y + h, s, k, i))
    return _to_detections(rows)


def read_detections(path: str | Path, dataset: ScoringDataset) -> Detections:
    """Detections from a CSV or COCO-results JSON file, chosen by content (a JSON file starts with
    ``[`` or ``{``)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from None
    if head[:1] in (b"[", b"{"):
        return read_coco_detections(path, dataset)
    return read_csv_detections(path, dataset)


# ---------------------------------------------------------------------------------------------- scoring


def protocol_note(interp: str, ious: Sequence[float], n_classes_with_gt: int) -> str:
    """One sentence per rule that decides the numbers, for tables and JSON reports."""
    ts = ", ".join(f"{t:g}" for t in ious)
    if interp == "coco":
        return (f"COCO AP by faster-coco-eval: 101 recall points, IoU thresholds {ts}, area 'all', at most "
                "100 detections per image and class, each detection matched to the best still-unmatched "
                "ground truth. mAP is the mean over these IoU thresholds and the "
                f"{n_classes_with_gt} classes with ground truth (COCOeval stats[0]).")
    kind = ("PASCAL VOC2007 11-point interpolated AP (recall levels 0, 0.1, ..., 1)" if interp == "voc07"
            else "PASCAL VOC2010+ all-point AP (area under the monotone precision envelope)")
    return (f"{kind} at IoU {ts}. Greedy matching per class in descending score order over all images: "
            "each detection takes the ground truth of highest IoU in its image and is a true positive iff "
            "that IoU >= the threshold and that ground truth is still free (the VOC devkit uses > and "
            "+1-pixel box sizes; here >= and continuous coordinates). No 'difficult' objects: all ground "
            f"truth counts. mAP is the mean over the {n_classes_with_gt} classes with ground truth"
            + (" and the IoU thresholds." if len(ious) > 1 else "."))


def score(dataset: ScoringDataset, detections: Detections, iou: float | Sequence[float] | None = None,
          interp: str = "voc07") -> dict:
    """Score ``detections`` (image = index into ``dataset.images``) against the dataset's ground truth.

    iou: one threshold or several (fractions); default 0.5 for voc07/voc, .50:.05:.95 for coco.
    Returns a JSON-ready dict: ``mAP`` (fraction; for coco AP@[.50:.05:.95] unless ``iou`` says
    otherwise; None when no class has ground truth), ``per_class`` {class: AP or None}, ``interp``,
    ``iou`` (a number, or a list for several thresholds), ``n_gt`` / ``n_det`` {class: count},
    ``mAP_per_iou`` and ``per_class_per_iou`` (keyed by threshold text), ``n_images``,
    ``n_classes_with_gt`` and ``protocol_note``.
    """
    classes = tuple(dataset.classes)
    res = evaluate(dataset.ground_truth(), detections, len(classes), iou, interp)
    d = res.to_dict(classes)
    ts = res.iou_thresholds
    return {
        "mAP": d["mAP"],
        "per_class": {c: d["per_class"][c]["AP"] for c in classes},
        "interp": interp,
        "iou": ts[0] if len(ts) == 1 else list(ts),
        "n_gt": {c: d["per_class"][c]["n_gt"] for c in classes},
        "n_det": {c: d["per_class"][c]["n_det"] for c in classes},
        "mAP_per_iou": d["mAP_per_iou"],
        "per_class_per_iou": {c: d["per_class"][c]["AP_per_iou"] for c in classes},
        "n_images": len(dataset.images),
        "n_classes_with_gt": d["n_classes_with_gt"],
        "dataset": getattr(dataset, "name", None),
        "split": getattr(dataset, "split", None),
        "protocol_note": protocol_note(interp, ts, d["n_classes_with_gt"]),
    }


def format_score_table(result: dict) -> str:
    """Plain-text table of a :func:`score` result (AP in percent)."""
    def pct(v):
        return "    -" if v is None else f"{100 * v:5.1f}"

    iou = result["iou"]
    iou_text = f"{iou:g}" if isinstance(iou, float) else f"{iou[0]:g}..{iou[-1]:g} ({len(iou)} thresholds)"
    lines = [f"{result.get('dataset') or 'dataset'} {result.get('split') or ''}: {result['interp']} AP "
             f"at IoU {iou_text}, {result['n_images']} images",
             f"  {'class':<26} {'n_gt':>7} {'n_det':>8} {'AP%':>6}"]
    for c, ap in result["per_class"].items():
        lines.append(f"  {c:<26} {result['n_gt'][c]:>7} {result['n_det'][c]:>8} {pct(ap):>6}")
    lines.append(f"  {'mAP':<26} {sum(result['n_gt'].values()):>7} {sum(result['n_det'].values()):>8} "
                 f"{pct(result['mAP']):>6}")
    lines.append(result["protocol_note"])
    return "\n".join(lines)


__all__ = [
    "CSV_COLUMNS", "COCO_IOUS", "read_csv_detections", "read_coco_detections", "read_detections",
    "score", "protocol_note", "format_score_table",
]
