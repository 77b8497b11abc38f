"""A run as files FiftyOne loads into one dataset (``surgery export fiftyone``): ground truth, one field of
predicted boxes per method, and the heatmaps. FiftyOne is never imported here (it stays optional).

Layout of the export folder::

    ground_truth.json                   COCO detection dataset: images (file_name, width, height), categories,
                                        the run's ground truth
    predictions/<method>.json           the same images and categories, annotations = the method's boxes for one
                                        protocol and box rule, each with its ``score`` (FiftyOne's confidence)
    heatmaps/<method>/<class>/<id>.png  the method's working map of the class (min-max normalised, 0-1 as 0-255,
                                        8-bit grey), the map boxes are cut from
    heatmaps.json                       {field: {image file name: PNG path relative to the folder}}
    load_fiftyone.py                    the snippet: one FiftyOne dataset, ground truth plus one field per method
                                        and one heatmap field per method and class, and the App
    manifest.json                       run, protocol, box rule, fields

Formats, as FiftyOne documents them (read at ``voxel51/fiftyone``):

- every labels file is a whole COCO detection dataset, what ``fiftyone.types.COCODetectionDataset`` imports
  (``COCODetectionDatasetImporter``, ``fiftyone/utils/coco.py`` @ ``c5e8abc``: images matched to files by
  ``file_name`` under ``data_path``, category names looked up by id, ``score`` read as the detection's
  ``confidence``, absolute-pixel ``bbox`` ``[x, y, w, h]``), one file per label field;
- heatmaps follow ``fo.Heatmap(map_path=..., range=...)`` (user guide ``docs/source/user_guide/using_datasets.rst``
  @ ``f5d543e``, section "Heatmaps"): a map on disk, an integer map read in ``[0, 255]`` unless ``range`` says
  otherwise, any size (stretched to the image's extent in the App).

Which heatmaps: by default the classes annotated in each image (``present``: one PNG per (image, class) pair
with ground truth), or every class of the run (``all``: images x classes PNGs per method).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from surgery_core.data.exchange import CocoIds, coco_labels
from surgery_core.eval.boxes import Cut, cut_tag
from surgery_core.eval.maps import working_map
from surgery_core.files import atomic_write_bytes, atomic_write_text
from surgery_core.run.facade import Run
from surgery_core.eval.protocols import Cell, PRESENT
from surgery_core.share.export_boxes import cell_note, cells, ensure_cells, ground_truth_doc, run_info

HEATMAP_CLASSES = ("present", "all", "none")
GROUND_TRUTH_FIELD = "ground_truth"

SNIPPET = '''\
"""Load this export into one FiftyOne dataset and open the App (pip install fiftyone).

    python load_fiftyone.py IMAGE_FOLDER [DATASET_NAME]

IMAGE_FOLDER holds the images named in ground_truth.json (file_name). Written by `surgery export fiftyone`.
"""
import json
import sys
from pathlib import Path

import fiftyone as fo

here = Path(__file__).resolve().parent
images = sys.argv[1] if len(sys.argv) > 1 else {images!r}
name = sys.argv[2] if len(sys.argv) > 2 else {name!r}
coco = fo.types.COCODetectionDataset

dataset = fo.Dataset.from_dir(dataset_type=coco, data_path=images, labels_path=str(here / "ground_truth.json"),
                              label_types="detections", label_field="ground_truth", name=name, overwrite=True)
for labels in sorted((here / "predictions").glob("*.json")):  # one field of boxes per method
    part = fo.Dataset.from_dir(dataset_type=coco, data_path=images, labels_path=str(labels),
                               label_types="detections", label_field=labels.stem)
    dataset.merge_samples(part)  # joined on the image file path
    part.delete()
names = [Path(p).name for p in dataset.values("filepath")]
for field, maps in json.loads((here / "heatmaps.json").read_text()).items():  # one field per method and class
    dataset.set_values(field, [fo.Heatmap(map_path=str(here / maps[n]), range=[0, 255]) if n in maps else None
                               for n in names])
if __name__ == "__main__":
    session = fo.launch_app(dataset)
    session.wait()
'''


def heatmap_field(method: str, class_name: str) -> str:
    """The FiftyOne field of one method's heatmaps of one class (``heatmap_vv_mixed_airplane``)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in class_name)
    return f"heatmap_{method}_{safe}"


def write_fiftyone(run: Run, out: str | Path, methods: Iterable[str] | None = None, protocol: str = PRESENT.name,
                   cut: Cut | None = None, heatmaps: str = "present") -> dict:
    """Write the folder of the module note, the boxes cut by ``cut`` (default: the run's box rule); returns the
    manifest (also written as ``manifest.json``)."""
    from surgery_core.errors import SurgeryError

    if heatmaps not in HEATMAP_CLASSES:
        raise SurgeryError(f"--heatmaps {heatmaps}: one of {', '.join(HEATMAP_CLASSES)}")
    exported: list[Cell] = cells(run, methods, [protocol], cut)
    out = Path(out)
    ids = CocoIds.of(run.dataset, run.classes)
    folder, names = _image_names(run)
    gt = ground_truth_doc(run)
    for img, name in zip(gt["images"], names.values()):  # paths under the one folder FiftyOne is given
        img["file_name"] = name
    atomic_write_text(out / "ground_truth.json", json.dumps(gt, separators=(",", ":")) + "\n")
    ensure_cells(run, exported)
    for c in exported:
        doc = {k: gt[k] for k in ("licenses", "images", "categories")}
        doc["info"] = run_info(run) | {"method": c.method, "protocol": c.protocol.name, "boxes": cell_note(run, c)}
        doc["annotations"] = coco_labels(run.detections(c.method, c.protocol, c.cut), ids)
        atomic_write_text(out / "predictions" / f"{c.method}.json", json.dumps(doc, separators=(",", ":")) + "\n")
    fields = _write_heatmaps(run, out, [c.method for c in exported], heatmaps, names)
    atomic_write_text(out / "heatmaps.json", json.dumps(fields, indent=1) + "\n")
    images = folder or "IMAGE_FOLDER"
    atomic_write_text(out / "load_fiftyone.py", SNIPPET.format(images=str(images), name=f"surgery-{run.run_hash}"))
    manifest = {"run": run_info(run), "protocol": protocol, "box_rule": cut_tag(exported[0].cut),
                "boxes_note": cell_note(run, exported[0]), "ground_truth_field": GROUND_TRUTH_FIELD,
                "prediction_fields": {c.method: f"predictions/{c.method}.json" for c in exported},
                "heatmaps": heatmaps, "heatmap_fields": sorted(fields),
                "heatmap_values": "working map of the class: raw grid min-max normalised per image and class, "
                                  "bilinearly upsampled to the working resolution, 0-1 written as 0-255",
                "image_folder": str(images)}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _image_names(run: Run) -> tuple[str | None, dict[int, str]]:
    """The one folder that holds every image of the run (their deepest common folder; None when some image file is
    absent) and each image's path under it, by dataset index (DIOR ``all`` spans two image folders)."""
    import os

    recs = {i: run.dataset.images[i] for i in run.grids.rows.tolist()}
    if not recs or any(r.path is None for r in recs.values()):
        return None, {i: f"{r.image_id}.jpg" if r.path is None else r.path.name for i, r in recs.items()}
    folder = os.path.commonpath([str(r.path.resolve().parent) for r in recs.values()])
    return folder, {i: Path(os.path.relpath(r.path.resolve(), folder)).as_posix() for i, r in recs.items()}


def _grey_png(map01: np.ndarray) -> bytes:
    """An 8-bit one-channel PNG of a 0-1 map (0-255): a 2-D map, as ``fo.Heatmap`` reads one."""
    import cv2

    grey = np.clip(np.rint(map01 * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _write_heatmaps(run: Run, out: Path, methods: list[str], which: str, names: dict[int, str]
                    ) -> dict[str, dict[str, str]]:
    """One 8-bit PNG per (method, image, class) of ``which``; returns ``{field: {file name: relative path}}``."""
    fields: dict[str, dict[str, str]] = {}
    if which == "none":
        return fields
    res = run.cfg.boxes.box_resolution
    for n, i in enumerate(run.grids.rows.tolist()):
        rec = run.dataset.images[i]
        name = names[i]
        ks = np.unique(rec.labels).tolist() if which == "present" else range(len(run.classes))
        for m in methods:
            for k in ks:
                wm = working_map(run.grids.grids[m][n, k], rec.width, rec.height, res)
                rel = f"heatmaps/{m}/{run.classes[k]}/{rec.image_id}.png"
                atomic_write_bytes(out / rel, _grey_png(wm))
                fields.setdefault(heatmap_field(m, run.classes[k]), {})[name] = rel
    return fields


__all__ = ["write_fiftyone", "heatmap_field", "HEATMAP_CLASSES", "SNIPPET"]
