"""Detection datasets: DIOR in its release layout, and COCO-format JSON.

Annotations load without the images being present (scoring needs annotations only). Every quirk of the
files is handled and counted in a :class:`LoadReport`; nothing is dropped without a line saying which file
and why.

Box coordinates are pixels of the original image, ``xyxy``, continuous (see ``detections.py``). DIOR writes
integer pixel coordinates; they are taken as written (no +1), then clipped to the image if they run past it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _safe_fromstring

from surgery_core.data.classes import DIOR_CLASSES, ClassIndex
from surgery_core.data.detections import Detections
from surgery_core.errors import AnnotationError, InputError

SPLITS = ("train", "val", "test", "trainval", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
# Annotation files larger than this are not DIOR annotations (the largest real one is ~60 KB).
MAX_ANNOTATION_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageRecord:
    """One image and its ground truth.

    xyxy: float64 [n, 4] original-image pixels. labels: int64 [n], index into the dataset's classes.
    path: the image file, or None when the images are not present.
    """

    image_id: str
    width: int
    height: int
    xyxy: np.ndarray
    labels: np.ndarray
    path: Path | None = None
    annotation: Path | None = None
    depth: int = 3

    @property
    def num_objects(self) -> int:
        return len(self.labels)


@dataclass
class LoadReport:
    """What the reader met: counts of every quirk, and every file or object it skipped, with the reason."""

    files: int = 0
    objects: int = 0
    zero_size_boxes: int = 0
    boxes_past_image: int = 0
    boxes_touching_border: int = 0
    depth_not_3: int = 0
    with_xml_declaration: int = 0
    aliased_class_names: Counter = field(default_factory=Counter)
    images_found: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    skipped_objects: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "objects": self.objects,
            "zero_size_boxes": self.zero_size_boxes,
            "boxes_past_image_clipped": self.boxes_past_image,
            "boxes_touching_border": self.boxes_touching_border,
            "depth_not_3": self.depth_not_3,
            "with_xml_declaration": self.with_xml_declaration,
            "aliased_class_names": dict(sorted(self.aliased_class_names.items())),
            "images_found": self.images_found,
            "skipped_files": [{"file": f, "reason": r} for f, r in self.skipped_files],
            "skipped_objects": [{"file": f, "reason": r} for f, r in self.skipped_objects],
        }


@dataclass
class Dataset:
    """An ordered list of images with ground truth over a fixed class list."""

    name: str
    split: str
    classes: tuple[str, ...]
    images: list[ImageRecord]
    report: LoadReport
    root: Path | None = None
    #: Read from a COCO file: its image ids (-> image id, the file stem) and category ids (-> class index), by
    #: which COCO results name images and classes. None for other datasets.
    coco_image_ids: dict[int, str] | None = None
    coco_category_ids: dict[int, int] | None = None
    image_dirs: tuple[Path, ...] = ()  # the folders its image files were looked for in

    def __post_init__(self):
        self._index = {rec.image_id: i for i, rec in enumerate(self.images)}

    def __len__(self) -> int:
        return len(self.images)

    def index_of(self, image_id: str) -> int:
        """Position of an image id (file stem, e.g. ``'11726'``); KeyError when absent."""
        return self._index[str(image_id)]

    def ground_truth(self) -> Detections:
        """All boxes of the dataset as one :class:`Detections` (score 1, image = position in ``images``)."""
        n = [len(r.labels) for r in self.images]
        if sum(n) == 0:
            return Detections.empty()
        xyxy = np.concatenate([r.xyxy for r in self.images])
        labels = np.concatenate([r.labels for r in self.images])
        image = np.repeat(np.arange(len(self.images)), n)
        return Detections(xyxy, np.ones(len(labels)), labels, image)

    def per_class_counts(self) -> dict[str, int]:
        counts = np.bincount(np.concatenate([r.labels for r in self.images] or [np.zeros(0, np.int64)]),
                             minlength=len(self.classes))
        return {c: int(counts[i]) for i, c in enumerate(self.classes)}

    def summary(self) -> dict:
        """JSON-ready summary: image and object counts, per-class counts and the reader's report."""
        return {
            "dataset": self.name,
            "root": None if self.root is None else str(self.root),
            "split": self.split,
            "images": len(self.images),
            "objects": int(sum(r.num_objects for r in self.images)),
            "classes": list(self.classes),
            "per_class": self.per_class_counts(),
            "quirks": self.report.to_dict(),
        }

    def subset(self, indices) -> "Dataset":
        """A dataset over some of the images (the class list and report are kept)."""
        return Dataset(self.name, self.split, self.classes, [self.images[i] for i in indices], self.report,
                       self.root, self.coco_image_ids, self.coco_category_ids, self.image_dirs)


# ---------------------------------------------------------------------------------------------- DIOR


@dataclass(frozen=True)
class DiorLayout:
    """Where the parts of a DIOR release live under a root (found by :func:`find_dior_layout`)."""

    root: Path
    annotations: Path
    image_dirs: tuple[Path, ...]
    imagesets: Path | None


def _first_existing(root: Path, names: list[str]) -> Path | None:
    # Some unzips produce a doubled folder (JPEGImages-test/JPEGImages-test); some keep a DIOR/ level.
    for base in (root, root / "DIOR"):
        for name in names:
            for cand in (base / name / Path(name).name, base / name):
                if cand.is_dir():
                    return cand
    return None


def find_dior_layout(root: str | Path) -> DiorLayout:
    """Locate annotations, image folders and split lists under ``root`` (release layout, doubled folders,
    or an extra ``DIOR/`` level). Raises InputError naming the root when no annotations are found."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(root, "dataset root is not a directory")
    ann = None
    for base in (root, root / "DIOR"):
        for cand in (base / "Annotations" / "Horizontal Bounding Boxes",
                     base / "Annotations" / "Annotations" / "Horizontal Bounding Boxes",
                     base / "Horizontal Bounding Boxes",
                     base / "Annotations"):
            # The bare Annotations/ folder only counts when it holds the XML files itself (older releases).
            if cand.is_dir() and (cand.name != "Annotations" or any(cand.glob("*.xml"))):
                ann = cand
                break
        if ann:
            break
    if ann is None:
        raise InputError(root, "no DIOR annotations found (expected 'Annotations/Horizontal Bounding Boxes/'"
                               " with one XML file per image)")
    image_dirs = tuple(d for d in (_first_existing(root, ["JPEGImages-trainval"]),
                                   _first_existing(root, ["JPEGImages-test"]),
                                   _first_existing(root, ["JPEGImages"])) if d is not None)
    imagesets = _first_existing(root, ["ImageSets/Main"])
    return DiorLayout(root, ann, image_dirs, imagesets)


def read_split_ids(layout: DiorLayout, split: str) -> list[str] | None:
    """Image ids of a split from ``ImageSets/Main``; None for ``all``. ``trainval`` is train + val."""
    if split not in SPLITS:
        raise InputError(None, f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return None
    parts = ["train", "val"] if split == "trainval" else [split]
    ids: list[str] = []
    for part in parts:
        f = None if layout.imagesets is None else layout.imagesets / f"{part}.txt"
        if f is None or not f.is_file():
            raise InputError(f or layout.root / "ImageSets/Main", f"split list {part}.txt not found")
        ids += [line.strip() for line in f.read_text().splitlines() if line.strip()]
    return ids


def _text(node, path: str, file: Path) -> str:
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        raise AnnotationError(file, f"missing <{path}>")
    return child.text.strip()


def _number(node, path: str, file: Path) -> float:
    raw = _text(node, path, file)
    try:
        return float(raw)
    except ValueError:
        raise AnnotationError(file, f"<{path}> is not a number: {raw[:40]!r}") from None


def parse_dior_xml(data: bytes, file: Path, index: ClassIndex, report: LoadReport,
                   image_size: tuple[int, int] | None = None):
    """Parse one DIOR horizontal-box XML (hardened: no DTD, no entities).

    Returns (width, height, depth, xyxy float64 [n,4], labels int64 [n]). Objects that cannot be used
    (unknown class, missing or non-numeric coordinates, inverted box) are skipped and listed in ``report``;
    a file that cannot be used at all raises AnnotationError naming it.
    """
    if len(data) > MAX_ANNOTATION_BYTES:
        raise AnnotationError(file, f"annotation file is {len(data)} bytes, larger than any DIOR annotation")
    try:
        root = _safe_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AnnotationError(file, f"refused hostile XML ({type(exc).__name__}: DTDs and entities are not "
                                    "allowed in annotations)") from None
    except (ParseError, ValueError) as exc:
        raise AnnotationError(file, f"not well-formed XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(file, f"root element is <{root.tag}>, expected <annotation>")
    if data.lstrip()[:5] == b"<?xml":
        report.with_xml_declaration += 1
    size = root.find("size")
    if size is not None:
        width, height = int(_number(size, "width", file)), int(_number(size, "height", file))
        depth_node = size.find("depth")
        depth = int(depth_node.text) if depth_node is not None and (depth_node.text or "").strip().isdigit() else 3
    elif image_size is not None:
        (width, height), depth = image_size, 3
    else:
        raise AnnotationError(file, "missing <size> and no image to read the size from")
    if width <= 0 or height <= 0:
        raise AnnotationError(file, f"image size {width}x{height} is not positive")
    if depth != 3:
        report.depth_not_3 += 1

    boxes, labels = [], []
    for k, obj in enumerate(root.iter("object")):
        try:
            name = _text(obj, "name", file)
            bb = obj.find("bndbox")
            if bb is None:
                raise AnnotationError(file, "missing <bndbox>")
            x1, y1, x2, y2 = (_number(bb, t, file) for t in ("xmin", "ymin", "xmax", "ymax"))
        except AnnotationError as exc:
            report.skipped_objects.append((str(file), f"object {k}: {exc.problem}"))
            continue
        cls = index.lookup(name)
        if cls is None:
            report.skipped_objects.append((str(file), f"object {k}: class {name!r} is not in the class list"))
            continue
        if index.classes[cls] != name:
            report.aliased_class_names[f"{name} -> {index.classes[cls]}"] += 1
        if x2 < x1 or y2 < y1:
            report.skipped_objects.append((str(file), f"object {k}: inverted box {x1, y1, x2, y2}"))
            continue
        if x2 == x1 or y2 == y1:
            report.zero_size_boxes += 1
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            report.boxes_past_image += 1
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x1 <= 0 or y1 <= 0 or x2 >= width or y2 >= height:
            report.boxes_touching_border += 1
        boxes.append((x1, y1, x2, y2))
        labels.append(cls)
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return width, height, depth, xyxy, np.asarray(labels, dtype=np.int64)


def load_dior(root: str | Path, split: str = "test", classes: tuple[str, ...] | list[str] = DIOR_CLASSES,
              strict: bool = False, limit: int | None = None) -> Dataset:
    """Read a DIOR release (annotations required, images optional).

    split: train, val, test, trainval or all. classes: the class list (DIOR's 20 by default; aliases of
    these names in the files are accepted and reported). strict: raise on the first unusable file instead
    of skipping it and listing it in ``dataset.report.skipped_files``. limit: first N ids of the split.
    """
    layout = find_dior_layout(root)
    index = ClassIndex(classes)
    ids = read_split_ids(layout, split)
    if ids is None:
        ids = sorted(p.stem for p in layout.annotations.glob("*.xml"))
    if limit is not None:
        ids = ids[:limit]
    image_files: dict[str, Path] = {}
    for d in layout.image_dirs:
        for p in d.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                image_files.setdefault(p.stem, p)

    report = LoadReport()
    images: list[ImageRecord] = []
    for image_id in ids:
        file = layout.annotations / f"{image_id}.xml"
        report.files += 1
        try:
            try:
                data = file.read_bytes()
            except FileNotFoundError:
                raise AnnotationError(file, "annotation file listed in the split is missing") from None
            w, h, depth, xyxy, labels = parse_dior_xml(data, file, index, report)
        except AnnotationError as exc:
            if strict:
                raise
            report.skipped_files.append((str(file), exc.problem))
            continue
        report.objects += len(labels)
        path = image_files.get(image_id)
        report.images_found += path is not None
        images.append(ImageRecord(image_id, w, h, xyxy, labels, path, file, depth))
    return Dataset("DIOR", split, index.classes, images, report, layout.root, image_dirs=tuple(layout.image_dirs))


# ---------------------------------------------------------------------------------------------- samples
SAMPLES_ROOT = Path(__file__).parents[1] / "samples" / "dior"
# What the dashboard, the reports and the snapshots call the shipped pictures (``Dataset.name``), so that nobody
# cites five images as results on DIOR.
SAMPLES_DATASET_NAME = "DIOR samples ({n} real images)"


def load_samples(root: str | Path | None = None, split: str = "test", classes: tuple[str, ...] | None = None,
                 limit: int | None = None) -> Dataset:
    """The real DIOR image/annotation pairs shipped with the package (``root``: another folder of them): all of
    them under the default split ``test`` (they are not one DIOR split), named :data:`SAMPLES_DATASET_NAME`."""
    ds = load_dior(root or SAMPLES_ROOT, "all" if split == "test" else split, classes or DIOR_CLASSES, limit=limit)
    ds.name = SAMPLES_DATASET_NAME.format(n=len(ds))
    return ds


# ---------------------------------------------------------------------------------------------- COCO


def load_coco(annotation_file: str | Path, images_dir: str | Path | None = None,
              classes: tuple[str, ...] | list[str] | None = None) -> Dataset:
    """Read a COCO-format detection JSON (``images``, ``annotations`` with xywh ``bbox``, ``categories``).

    The class list is the categories sorted by id unless ``classes`` is given (then category names are
    matched to it, aliases accepted). Crowd annotations are skipped and listed in the report. Image
    ``file_name``s are relative to ``images_dir``, by default the JSON's own folder.
    """
    annotation_file = Path(annotation_file)
    try:
        doc = json.loads(annotation_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(annotation_file, f"cannot read COCO JSON ({exc})") from None
    if not isinstance(doc, dict) or not {"images", "annotations", "categories"} <= set(doc):
        raise AnnotationError(annotation_file, "COCO JSON needs 'images', 'annotations' and 'categories'")
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    index = ClassIndex(tuple(classes) if classes is not None else tuple(c["name"] for c in cats))
    cat_to_class = {c["id"]: index.lookup(c["name"]) for c in cats}
    report = LoadReport(files=1)
    by_image: dict[int, list] = {}
    for k, ann in enumerate(doc["annotations"]):
        where = f"annotation {k} (id {ann.get('id')})"
        cls = cat_to_class.get(ann.get("category_id"))
        if cls is None:
            report.skipped_objects.append((str(annotation_file), f"{where}: category {ann.get('category_id')} "
                                                                 "is not in the class list"))
            continue
        if ann.get("iscrowd", 0):
            report.skipped_objects.append((str(annotation_file), f"{where}: crowd annotation"))
            continue
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            report.skipped_objects.append((str(annotation_file), f"{where}: bbox is not [x, y, w, h]"))
            continue
        by_image.setdefault(ann["image_id"], []).append(((x, y, x + w, y + h), cls))
    images_dir = annotation_file.parent if images_dir is None else Path(images_dir)
    if not images_dir.is_dir():
        raise AnnotationError(images_dir, f"images folder of {annotation_file.name} does not exist (or is not a "
                                          "folder)")
    images, image_ids = [], {}
    for img in doc["images"]:
        objs = by_image.get(img["id"], [])
        xyxy = np.asarray([o[0] for o in objs], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray([o[1] for o in objs], dtype=np.int64)
        report.zero_size_boxes += int(np.sum((xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1])))
        report.objects += len(labels)
        path = None
        if (images_dir / img["file_name"]).is_file():
            path = images_dir / img["file_name"]
            report.images_found += 1
        stem = Path(img["file_name"]).stem
        image_ids[img["id"]] = stem
        images.append(ImageRecord(stem, int(img["width"]), int(img["height"]), xyxy, labels, path,
                                  annotation_file))
    categories = {i: k for i, k in cat_to_class.items() if k is not None}
    return Dataset(annotation_file.stem, "all", index.classes, images, report, annotation_file.parent,
                   image_ids, categories, (images_dir,))

