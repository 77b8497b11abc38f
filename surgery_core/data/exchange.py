"""Boxes in the formats other tools read: COCO ground truth, COCO results and the CSV of ``surgery score``.

Every writer here is exact: a float is written as Python's ``repr`` (the shortest text that reads back to the
same float64, 17 significant digits at most), so reading a file back gives the very coordinates and scores
that were written. The one exception is COCO's ``bbox``, ``[x, y, w, h]``: ``w = xmax - xmin`` is exact
text, but a reader that turns it back into ``xmax = x + w`` may land one unit in the last place away from the
original ``xmax`` (float addition). The CSV keeps ``xmin, ymin, xmax, ymax`` as written, bit for bit.

Ids (:class:`CocoIds`), chosen so that one file serves every reader:

- image id: the image's id as a number when every image id of the dataset is a distinct decimal number
  (DIOR: ``11726`` for ``11726.jpg``, how DIOR is usually converted to COCO); otherwise its position, 1-based.
  ``file_name`` is the image's file name, so tools that match by name (FiftyOne) find the picture.
- category id: DIOR's class number, 1-based (1 = airplane ... 20 = windmill), when every class is a DIOR class
  (any spelling), which is what ``surgery score`` and most DIOR converters assume for a plain results list;
  otherwise the class's position in the class list, 1-based. The ground-truth file lists the categories with
  their ids and names, so a COCO reader never has to guess.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from surgery_core.data.classes import DIOR_CLASSES, ClassIndex
from surgery_core.data.datasets import Dataset
from surgery_core.data.detections import Detections

#: Columns of the CSV ``surgery score`` reads (:mod:`surgery_core.eval.scoring` reads the same header).
CSV_COLUMNS = ("image_id", "class", "xmin", "ymin", "xmax", "ymax", "score")


@dataclass(frozen=True)
class CocoIds:
    """COCO ids of a dataset's images (by position in ``dataset.images``) and of its classes (by class index)."""

    images: tuple[int, ...]
    categories: tuple[int, ...]
    image_rule: str = "position"  # "stem": the file stem as a number; "position": 1-based position
    category_rule: str = "position"  # "dior": DIOR's class number; "position": 1-based position in the class list

    @classmethod
    def of(cls, dataset: Dataset, classes: Sequence[str] | None = None) -> "CocoIds":
        """The ids of the module note for ``dataset`` and the class list ``classes`` (default: the dataset's)."""
        stems = [str(rec.image_id) for rec in dataset.images]
        numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
        images = tuple(int(s) for s in stems) if numeric else tuple(range(1, len(stems) + 1))
        image_rule = "stem" if numeric else "position"
        classes = tuple(dataset.classes if classes is None else classes)
        dior = ClassIndex(DIOR_CLASSES)
        numbers = [dior.lookup(c) for c in classes]
        if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
            categories, category_rule = tuple(n + 1 for n in numbers), "dior"
        else:
            categories, category_rule = tuple(range(1, len(classes) + 1)), "position"
        return cls(images, categories, image_rule, category_rule)


def _file_name(rec) -> str:
    return rec.path.name if rec.path is not None else f"{rec.image_id}.jpg"


def _xywh(xyxy: np.ndarray) -> list[list[float]]:
    """``[x, y, w, h]`` rows, ``w = xmax - xmin`` computed in float64 exactly as the COCO evaluation does
    (:func:`surgery_core.eval.ap.coco_dicts`)."""
    out = np.array(xyxy, dtype=np.float64, copy=True).reshape(-1, 4)
    out[:, 2:] = out[:, 2:] - out[:, :2]
    return out.tolist()


def coco_ground_truth(dataset: Dataset, rows: np.ndarray, classes: Sequence[str], ids: CocoIds,
                      info: dict | None = None) -> dict:
    """A COCO detection dataset (``images``, ``annotations``, ``categories``) of the images ``rows`` (positions in
    ``dataset.images``, kept in their order) and their ground truth over ``classes``.

    Annotations keep the dataset's object order (the VOC matching breaks ties by it); ``area`` is ``w * h`` and
    ``iscrowd`` 0, as for every box-only dataset; ids are 1-based positions."""
    images, annotations = [], []
    for i in np.asarray(rows, np.int64).tolist():
        rec = dataset.images[i]
        images.append({"id": ids.images[i], "file_name": _file_name(rec), "width": int(rec.width),
                       "height": int(rec.height)})
        boxes = _xywh(rec.xyxy)
        for (x, y, w, h), k in zip(boxes, rec.labels.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": ids.images[i],
                                "category_id": ids.categories[k], "bbox": [x, y, w, h], "area": w * h,
                                "iscrowd": 0})
    categories = [{"id": ids.categories[k], "name": c, "supercategory": "object"} for k, c in enumerate(classes)]
    doc = {"info": info or {}, "licenses": [], "images": images, "annotations": annotations,
           "categories": categories}
    return doc


def coco_results(det: Detections, ids: CocoIds) -> list[dict]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` as x, y, w, h, ``score``), in the order of ``det``
    (COCO breaks score ties by it)."""
    image = [ids.images[i] for i in det.image.tolist()]
    cat = [ids.categories[k] for k in det.class_id.tolist()]
    return [{"image_id": im, "category_id": c, "bbox": b, "score": s}
            for im, c, b, s in zip(image, cat, _xywh(det.xyxy), det.score.tolist())]


def coco_labels(det: Detections, ids: CocoIds) -> list[dict]:
    """``det`` as COCO *annotations* (with ``id``, ``area`` and ``iscrowd``, score kept): what a labels file
    that a COCO dataset importer reads holds, predictions included."""
    out = coco_results(det, ids)
    for n, a in enumerate(out, 1):
        x, y, w, h = a["bbox"]
        a.update(id=n, area=w * h, iscrowd=0)
    return out


def _csv_field(text: str) -> str:
    """A CSV field as the csv module writes it (quoted when it holds a comma, quote or line break)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def detections_csv(det: Detections, dataset: Dataset, classes: Sequence[str]) -> str:
    """``det`` as the CSV ``surgery score`` reads (header :data:`CSV_COLUMNS`), every float as its ``repr``.

    Lines are formatted directly (``%r`` is ``repr``), about twice as fast as ``csv.writer`` on a cell of a
    million boxes; image ids and class names are quoted as the csv module would."""
    stems = [_csv_field(str(rec.image_id)) for rec in dataset.images]
    names = [_csv_field(c) for c in classes]
    lines = [",".join(CSV_COLUMNS)]
    lines += ["%s,%s,%r,%r,%r,%r,%r" % (stems[i], names[k], x1, y1, x2, y2, s)
              for i, k, (x1, y1, x2, y2), s in zip(det.image.tolist(), det.class_id.tolist(), det.xyxy.tolist(),
                                                   det.score.tolist())]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (no reader sees a partial export file)."""
    from surgery_core.files import atomic_write_text

    path = Path(path)
    atomic_write_text(path, text)
    return path


__all__ = ["CSV_COLUMNS", "CocoIds", "coco_ground_truth", "coco_results", "coco_labels", "detections_csv",
           "write_text"]
