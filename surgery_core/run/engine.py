"""Orchestration: resolve a run's dataset and model, compute missing grids in batches, gather them.

Numerics live in the pure modules (heatmaps, boxes, ap, quality); this module only moves data: a
``torch.utils.data.DataLoader`` decodes images in worker processes (pinned memory on CUDA), the model runs
batched under autocast on GPU, each image's grids go to the run store as soon as they exist, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from surgery_core.data.datasets import SAMPLES_DATASET_NAME, SAMPLES_ROOT  # noqa: F401 - where callers import them
from surgery_core.data.datasets import Dataset, load_coco, load_dior, load_samples
from surgery_core.data.images import read_image, squash, to_tensor
from surgery_core.errors import CheckpointError, EmptyRunError, ImageError, InputError, SurgeryError
from surgery_core.files import content_sha256
from surgery_core.model.encoder import Resolution
from surgery_core.model.heatmaps import compute_heatmaps
from surgery_core.model.loading import LoadedModel, load_model
from surgery_core.model.local_models import find_model, locate, missing_message
from surgery_core.model.methods import get_method
from surgery_core.plugins import generated_dataset
from surgery_core.progress import QUIET, Progress
from surgery_core.run.config import CPU_RESIZE, RunConfig, heatmap_key
from surgery_core.run.device_images import RESIZE as DEVICE_RESIZE
from surgery_core.run.device_images import DeviceImageBatches
from surgery_core.run.grids import GridSet
from surgery_core.run.store import RunStore

# SAMPLES_ROOT and SAMPLES_DATASET_NAME live with the reader (``surgery score --samples`` needs them without torch).


def load_dataset(cfg: RunConfig, bars: Progress = QUIET) -> Dataset:
    """The dataset a run configuration names (demo scenes are generated on first use).

    Its ``name`` says what it is: ``DIOR`` for a DIOR folder, :data:`SAMPLES_DATASET_NAME` for the real DIOR
    pictures shipped with the package, the extension's own name for a generated kind (the demo scenes)."""
    d = cfg.data
    generated = generated_dataset(d.kind)
    if generated is not None and not d.root:
        generated.root(bars)  # generated on first use, with its own bar
    with bars.status(f"dataset: reading {d.kind} {d.split} annotations"):
        return _load_dataset(cfg)


def require_images(cfg: RunConfig, dataset: Dataset) -> None:
    """EmptyRunError (one line: where it looked, and the fix) when the run would read no image: an empty split,
    or no image file found for any annotated image (a COCO file without its images folder, a mistyped one)."""
    d = cfg.data
    where = d.root or (str(dataset.root) if dataset.root else dataset.name)
    if not len(dataset):
        if d.kind == "coco":
            raise EmptyRunError(where, "the COCO file lists no images: nothing to compute")
        raise EmptyRunError(where, f"the {d.split!r} split has no images: nothing to compute; choose another split "
                                   "(--split all, or train, val, trainval; 'split' in Run settings)")
    if any(r.path is not None for r in dataset.images):
        return
    dirs = ", ".join(str(p) for p in dataset.image_dirs) or "(no image folder found)"
    if d.kind == "coco":
        fix = "give the folder the JSON's file_name entries are relative to (--images FOLDER; 'images' in Run settings)"
    else:
        fix = "put the images in JPEGImages-trainval/ and JPEGImages-test/ beside the annotations"
    raise EmptyRunError(where, f"none of the {len(dataset)} images has an image file (looked in {dirs}): nothing to "
                               f"compute; {fix}")


def _load_dataset(cfg: RunConfig) -> Dataset:
    d = cfg.data
    if d.kind == "coco":
        if not d.root:
            raise InputError(None, "a COCO dataset needs data.root = the annotation JSON")
        ds = load_coco(d.root, d.images, cfg.classes)
        return ds.subset(range(min(len(ds), d.limit))) if d.limit else ds
    generated = generated_dataset(d.kind)
    if generated is not None:
        ds = load_dior(d.root or generated.root(QUIET), d.split, cfg.classes or generated.classes, limit=d.limit)
        ds.name = generated.name
        return ds
    if d.kind == "samples":
        return load_samples(d.root, d.split, cfg.classes, limit=d.limit)
    if not d.root:
        raise InputError(None, "a DIOR dataset needs data.root")
    from surgery_core.data.classes import DIOR_CLASSES

    return load_dior(d.root, d.split, cfg.classes or DIOR_CLASSES, limit=d.limit)


def resolve_model(cfg: RunConfig, device: torch.device | str | None = None, *, random_weights: bool = False,
                  bars: Progress = QUIET) -> LoadedModel:
    """The model a run configuration names (the demo architecture without a checkpoint: its shipped weights;
    any other architecture without one is refused unless ``random_weights``; see :func:`load_model`)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    m = cfg.model
    checkpoint = m.checkpoint
    if m.name and not checkpoint:  # a named model's file, found on this machine (never downloaded here)
        entry = find_model(m.name)
        found = locate(entry)
        if found is None:
            raise CheckpointError(None, missing_message(entry))
        checkpoint = str(found.path)
    what = (f"checkpoint {Path(checkpoint).name}" if checkpoint else
            "random weights" if random_weights else "shipped demo weights")
    with bars.status(f"model: loading {m.name or m.arch} ({what}) on {device.type}"):
        return load_model(m.arch, checkpoint, m.quickgelu, device, random_weights=random_weights, name=m.name,
                          expected_sha256=m.sha256, allow_sha256_mismatch=m.allow_sha256_mismatch)


class _ImageSet(torch.utils.data.Dataset):
    """Decodes and squashes images in loader workers; a bad image yields its error text, not an exception."""

    def __init__(self, paths: list[Path | None], size: int, mean, std):
        self.paths, self.size, self.mean, self.std = paths, size, mean, std

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        try:
            if path is None:
                raise ImageError(None, "image file not found next to its annotation")
            image = read_image(path)
            return i, torch.from_numpy(to_tensor(squash(image, self.size), self.mean, self.std)), ""
        except ImageError as exc:
            return i, None, str(exc)


def _collate(items):
    ok = [(i, x) for i, x, err in items if x is not None]
    bad = [(i, err) for i, x, err in items if x is None]
    batch = torch.stack([x for _, x in ok]) if ok else None
    return [i for i, _ in ok], batch, bad


ProgressFn = Callable[[int, int, float], None]  # (done, total, images per second)


def _hash_images(paths: list[Path | None], bars: Progress = QUIET) -> list[str | None]:
    def one(p):
        try:
            return None if p is None else content_sha256(p)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool, \
            bars.bar("image hashes (run-store keys)", len(paths) if len(paths) > 2000 else 0, "img") as bar:
        out = []
        for h in pool.map(one, paths):
            out.append(h)
            bar.update(1)
        return out


def compute_grids(cfg: RunConfig, dataset: Dataset, loaded: LoadedModel, store: RunStore, *,
                  batch_size: int = 64, workers: int | None = None, progress: ProgressFn | None = None,
                  show_bar: bool = False) -> GridSet:
    """Raw grids for every image of ``dataset``: from the store where present, else computed and stored.

    A second call with the same configuration runs no forward pass. A run killed at any moment keeps every
    entry already written; the next call computes only the rest.
    """
    t0 = time.perf_counter()
    classes = tuple(dataset.classes)
    size = cfg.input.size or loaded.image_size
    if size % loaded.patch_size:
        raise SurgeryError(f"input size {size} is not a multiple of the patch size {loaded.patch_size}")
    resolution = Resolution.from_input(cfg.input, loaded.image_size, loaded.patch_size)
    device = loaded.device
    # On a GPU, images are decoded and squashed on the card (device_images); the key says which path made them.
    key = heatmap_key(cfg, loaded.identity, classes, size,
                      resize=DEVICE_RESIZE if device.type == "cuda" else CPU_RESIZE, native_size=loaded.image_size)
    paths = [r.path for r in dataset.images]
    bars = Progress(show_bar)
    shas = _hash_images(paths, bars)
    skipped = [{"image_id": dataset.images[i].image_id, "reason": "image file not found"}
               for i, s in enumerate(shas) if s is None]
    # Each method's grids are stored under its name and definition version: a method added (or redefined)
    # since an entry was written is missing from it and computed alone, never read from an older definition.
    stored = {m: get_method(m).store_name for m in cfg.methods}
    want = set(stored.values())
    missing = {i: want - store.stored_names(key, s) for i, s in enumerate(shas) if s is not None}
    todo = [i for i, miss in missing.items() if miss]
    need = tuple(m for m in cfg.methods if any(stored[m] in missing[i] for i in todo))
    done = 0
    if todo:
        from surgery_core.model.prompts import PROMPT_SETS
        from surgery_core.model.text import ensemble_text_features

        # Computed once per model and class list (cached on the model): shown apart from the heatmap bar.
        with bars.status(f"text features: {len(classes)} classes x {len(PROMPT_SETS[cfg.prompt_set])}"
                         f" prompts ({cfg.prompt_set})"):
            ensemble_text_features(loaded, classes, cfg.prompt_set)
        if device.type == "cuda":
            loader = DeviceImageBatches([paths[i] for i in todo], size, loaded.mean, loaded.std, batch_size, device)
        else:
            if workers is None:
                workers = 0 if len(todo) < 64 else min(4, os.cpu_count() or 1)
            loader = torch.utils.data.DataLoader(
                _ImageSet([paths[i] for i in todo], size, loaded.mean, loaded.std), batch_size=batch_size,
                num_workers=workers, collate_fn=_collate, persistent_workers=False)
        bar = None
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="img", desc="heatmaps", file=sys.stderr)
        t_start = time.perf_counter()
        for local, batch, bad in loader:
            for j, err in bad:
                skipped.append({"image_id": dataset.images[todo[j]].image_id, "reason": err})
            if batch is not None:
                out = compute_heatmaps(loaded, batch.to(device, non_blocking=True), classes, need,
                                       depth=cfg.surgery_depth, resolution=resolution,
                                       prompt_set=cfg.prompt_set, posembed=cfg.input.posembed)
                for b, j in enumerate(local):
                    store.put(key, shas[todo[j]], {stored[m]: g[b] for m, g in out.grids.items()}, out.probs[b])
            done += len(local) + len(bad)
            rate = done / max(time.perf_counter() - t_start, 1e-9)
            if bar is not None:
                bar.update(len(local) + len(bad))
                bar.set_postfix_str(f"{rate:.1f} img/s")
            if progress is not None:
                progress(done, len(todo), rate)
        if bar is not None:
            bar.close()
    bad_ids = {s["image_id"] for s in skipped}
    rows, per_method, probs = [], {m: [] for m in cfg.methods}, []
    for i, s in enumerate(shas):
        if s is None or dataset.images[i].image_id in bad_ids:
            continue
        got = store.get(key, s)
        if got is None or not want <= set(got[0]):  # damaged on disk since written: drop it, recompute this entry
            store.entry_path(key, s).unlink(missing_ok=True)
            single = dataset.subset([i])
            compute_grids(cfg, single, loaded, store, batch_size=1, workers=0)
            got = store.get(key, s)
            if got is None:
                raise SurgeryError(f"run store entry for image {dataset.images[i].image_id} cannot be written "
                                   f"under {store.root}")
        grids, p = got
        rows.append(i)
        for m in cfg.methods:
            per_method[m].append(grids[stored[m]])
        probs.append(p)
    k = len(classes)
    empty = np.zeros((0, k, 1, 1), np.float32)
    return GridSet(key, classes, np.asarray(rows, np.int64),
                   {m: np.stack(v) if v else empty for m, v in per_method.items()},
                   np.stack(probs) if probs else np.zeros((0, k), np.float32), skipped,
                   computed=len(todo), reused=len(dataset) - len(todo) - sum(s is None for s in shas),
                   seconds=time.perf_counter() - t0, input_size=size)
