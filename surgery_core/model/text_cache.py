"""Where text features are kept: in memory per loaded model, and on disk per (model, prompt set, phrase).

* :class:`TextMemory`: a loaded model's features per (phrase list, prompt set), least recently used evicted
  beyond ``max_bytes`` (the heatmap pass asks for its class list once per batch: a hit costs one dict look-up).
* :class:`TextDiskCache`: one small file per (model sha256, prompt set and its wording, phrase, device kind,
  torch and open_clip versions) under ``$SURGERY_CACHE/text-features``, so a fresh process reads what an
  earlier one encoded. Files are written atomically (:func:`surgery_core.files.atomic_write_bytes`): a reader
  sees a whole file or none, and two processes writing the same phrase write the same bytes. A read touches the
  file's modification time; after a write, the least recently used files go until the folder is under
  ``max_bytes``. A file that vanishes under a reader (evicted by another process) is a miss, a damaged one is a
  miss and removed. Models without a checkpoint sha256 (random weights) are not cached on disk: nothing
  identifies their weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from surgery_core.files import atomic_write_bytes, cache_dir
from surgery_core.lru import LRU

#: Bump when the file layout or what a feature means changes: older files are then never read.
FORMAT = 1
DEFAULT_DISK_BYTES = 256 << 20  # ~130K phrases at ViT-B's 512 floats
DEFAULT_MEMORY_BYTES = 64 << 20


class TextMemory(LRU):
    """A loaded model's text features per ``(names, prompt set)``, bounded: LRU beyond ``max_bytes``
    (:class:`surgery_core.lru.LRU`)."""

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES):
        super().__init__(max_bytes, size=lambda t: t.numel() * t.element_size())

    @property
    def nbytes(self) -> int:
        return self.total


def model_text_key(loaded, prompt_set: str) -> str | None:
    """What the disk cache keys a model's features on besides the phrase, or None when nothing identifies the
    weights (no checkpoint sha256). The device kind and the library versions are part of it: kernels differ in
    the last bits between them, and a cached feature must equal the one this process would compute."""
    if not loaded.checkpoint_sha256:
        return None
    import open_clip

    from surgery_core.model.prompts import prompt_set_fingerprint

    doc = {"format": FORMAT, "model": loaded.identity, "prompt_set": prompt_set,
           "templates": prompt_set_fingerprint(prompt_set), "device": loaded.device.type,
           "torch": torch.__version__, "open_clip": open_clip.__version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


class TextDiskCache:
    """Text features on disk, one file per (model key, phrase); see the module docstring."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "text-features"
        env = os.environ.get("SURGERY_TEXT_CACHE_BYTES")
        self.max_bytes = int(max_bytes if max_bytes is not None else env if env else DEFAULT_DISK_BYTES)

    def path(self, model_key: str, phrase: str) -> Path:
        h = hashlib.sha256(phrase.encode()).hexdigest()[:32]
        return self.root / model_key / f"{h}.npy"

    def get(self, model_key: str, phrase: str) -> np.ndarray | None:
        """The float32 ``[D]`` feature of ``phrase``, or None (absent, evicted meanwhile, or damaged)."""
        path = self.path(model_key, phrase)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as doc:
                stored, feature = str(doc["phrase"]), doc["feature"]
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):
            stored, feature = None, None
        if stored != phrase or feature is None or feature.dtype != np.float32 or feature.ndim != 1:
            path.unlink(missing_ok=True)  # damaged, or (a sha256 prefix collision) another phrase's
            return None
        try:
            os.utime(path)  # most recently used
        except OSError:
            pass
        return feature

    def put(self, model_key: str, features: dict[str, np.ndarray]) -> None:
        """Write each phrase's ``[D]`` feature, then evict down to the bound (once per call)."""
        for phrase, feature in features.items():
            buf = io.BytesIO()
            np.savez(buf, phrase=np.array(phrase), feature=np.ascontiguousarray(feature, np.float32))
            try:
                atomic_write_bytes(self.path(model_key, phrase), buf.getvalue())
            except OSError:
                return  # a read-only or full cache folder costs speed, never a result
        self.evict()

    def evict(self) -> None:
        """Remove the least recently used files until the folder holds at most ``max_bytes``."""
        files = []
        for p in self.root.glob("*/*.npy"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, p))
        total = sum(s for _, s, _ in files)
        for _, size, p in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)  # another process may have removed it first
            total -= size
