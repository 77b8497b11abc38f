"""CLIP Surgery inspection library: data, models, heatmaps, boxes, metrics and a run store.

The public API is importable from here (``from surgery_core import Run, RunConfig``); each name is loaded on
first use, so ``import surgery_core`` costs nothing and a name from a light layer (``RunConfig``,
``SnapshotStore``, ``evaluate``) never loads torch. The layers, lowest first, are folders:

``data/`` (classes, ground truth, dataset readers, images), ``eval/`` (maps, boxes, matching, AP, quality,
external scoring), ``model/`` (loading, prompts, the forward, the method registry), ``run/`` (configuration,
store, engine, the ``Run`` facade), ``share/`` (figures, reports, snapshots); ``tests/test_layers.py`` keeps
them apart. No Streamlit here: the dashboard in ``dashboard/`` is one client of this library, the ``surgery``
command line another.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {
    # run
    "Run": "surgery_core.run.facade", "RunConfig": "surgery_core.run.config",
    "DataConfig": "surgery_core.run.config", "ModelConfig": "surgery_core.run.config",
    "InputConfig": "surgery_core.run.config", "RunStore": "surgery_core.run.store",
    "default_store": "surgery_core.run.store",
    # data
    "Detections": "surgery_core.data.detections", "Dataset": "surgery_core.data.datasets",
    "load_dior": "surgery_core.data.datasets", "load_coco": "surgery_core.data.datasets",
    "DIOR_CLASSES": "surgery_core.data.classes", "read_image": "surgery_core.data.images",
    # eval
    "evaluate": "surgery_core.eval.ap", "APResult": "surgery_core.eval.ap", "match": "surgery_core.eval.matching",
    "box_iou": "surgery_core.eval.matching", "BoxParams": "surgery_core.eval.boxes",
    "boxes_from_grid": "surgery_core.eval.boxes", "heatmap_quality": "surgery_core.eval.quality",
    # model
    "METHODS": "surgery_core.model.methods", "SEED_METHODS": "surgery_core.model.methods",
    "Method": "surgery_core.model.registry", "TokenPath": "surgery_core.model.registry",
    "get_method": "surgery_core.model.registry", "register_method": "surgery_core.model.registry",
    "register_path": "surgery_core.model.registry",
    "load_model": "surgery_core.model.loading", "compute_heatmaps": "surgery_core.model.heatmaps",
    # share
    "SnapshotStore": "surgery_core.share.snapshots", "write_report": "surgery_core.share.bundle",
    # errors
    "SurgeryError": "surgery_core.errors", "InputError": "surgery_core.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'surgery_core' has no attribute {name!r}")
    if module == "surgery_core.model.registry":
        importlib.import_module("surgery_core.model.methods")  # the registry's names come with the built-ins
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
