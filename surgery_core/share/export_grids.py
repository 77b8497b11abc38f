"""A run's raw heatmap grids as files numpy alone reads (``surgery export grids``).

One ``.npz`` for the whole run (``np.load(path)``; no pickle, so ``allow_pickle`` stays off)::

    grid_<method>   [N, K, gh, gw] raw similarity of each patch to each class (before min-max; float32, or
                    float16 on request: about 3 significant digits, half the size)
    class_prob      float32 [N, K] image-level class probability (softmax over the class set)
    image_ids       str [N] the dataset's image ids (DIOR: the file stem), in the run's order
    image_sizes     int64 [N, 2] width, height of each original image in px
    class_names     str [K]
    method_names    str [M]
    run_hash, heatmap_key, model, meta     str scalars (``str(z["run_hash"])``); ``model`` and ``meta`` are JSON

or, for large runs (``per_image``), a folder with one such file per image (``<image_id>.npz``: the same keys
without the leading N axis, ``image_id`` and ``image_size`` instead) and ``manifest.json``. Row ``n`` of the grids is
the image ``image_ids[n]``; grid cell ``(i, j)`` covers the model input's patch in row ``i``, column ``j`` (the
image squashed to the input size, docs/DESIGN.md section 3).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from surgery_core.files import atomic_write_bytes, atomic_write_text
from surgery_core.run.facade import Run

DTYPES = {"float32": np.float32, "float16": np.float16}


def _check(run: Run, methods: Iterable[str] | None, dtype: str) -> tuple[tuple[str, ...], type]:
    from surgery_core.errors import SurgeryError

    methods = tuple(run.cfg.methods if methods is None else methods)
    missing = [m for m in methods if m not in run.grids.grids]
    if missing or not methods:
        raise SurgeryError(f"run {run.run_hash} has no grids of {', '.join(missing) or '(no method given)'}; "
                           f"it has {', '.join(run.grids.grids)}")
    if dtype not in DTYPES:
        raise SurgeryError(f"--dtype {dtype}: one of {', '.join(DTYPES)}")
    return methods, DTYPES[dtype]


def grids_meta(run: Run, methods: tuple[str, ...], dtype: str) -> dict:
    """What the arrays are, for the ``meta`` entry and the manifest."""
    g = run.grids.grids[methods[0]]
    return {"run_hash": run.run_hash, "heatmap_key": run.grids.key, "model": run.model_info,
            "dataset": run.dataset.name, "split": run.dataset.split, "images": int(len(run.grids.rows)),
            "classes": list(run.classes), "methods": list(methods), "dtype": dtype,
            "grid": [int(g.shape[2]), int(g.shape[3])], "input_size": int(run.grids.input_size),
            "values": "raw similarity of each patch token to each class, before min-max normalisation",
            "surgery_depth": run.cfg.surgery_depth, "prompt_set": run.cfg.prompt_set,
            "window": run.cfg.input.window, "stride": run.cfg.input.stride, "model_note": run.model_note}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _common(run: Run, methods: tuple[str, ...], meta: dict) -> dict[str, np.ndarray]:
    return {"class_names": np.asarray(run.classes, dtype=str), "method_names": np.asarray(methods, dtype=str),
            "run_hash": np.asarray(run.run_hash), "heatmap_key": np.asarray(run.grids.key),
            "model": np.asarray(json.dumps(run.model_info)), "meta": np.asarray(json.dumps(meta))}


def write_grids(run: Run, out: str | Path, methods: Iterable[str] | None = None, dtype: str = "float32",
                per_image: bool = False) -> list[Path]:
    """Write the run's grids of ``methods`` (default: all of the run's) to ``out`` (module note); returns the
    files written."""
    methods, np_dtype = _check(run, methods, dtype)
    meta = grids_meta(run, methods, dtype)
    out = Path(out)
    rows = run.grids.rows
    ids = [str(run.dataset.images[i].image_id) for i in rows.tolist()]
    sizes = run.image_sizes()
    common = _common(run, methods, meta)
    if not per_image:
        arrays = {f"grid_{m}": run.grids.grids[m].astype(np_dtype) for m in methods}
        arrays |= {"class_prob": run.grids.probs.astype(np.float32), "image_ids": np.asarray(ids, dtype=str),
                   "image_sizes": sizes.astype(np.int64)} | common
        atomic_write_bytes(out, _npz(arrays))
        return [out]
    written = []
    for n, image_id in enumerate(ids):
        arrays = {f"grid_{m}": run.grids.grids[m][n].astype(np_dtype) for m in methods}
        arrays |= {"class_prob": run.grids.probs[n].astype(np.float32), "image_id": np.asarray(image_id),
                   "image_size": sizes[n].astype(np.int64)} | common
        path = out / f"{image_id}.npz"
        atomic_write_bytes(path, _npz(arrays))
        written.append(path)
    atomic_write_text(out / "manifest.json", json.dumps(meta | {"files": [p.name for p in written]}, indent=2) + "\n")
    return written + [out / "manifest.json"]


__all__ = ["DTYPES", "grids_meta", "write_grids"]
