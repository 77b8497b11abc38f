"""The run store: raw heatmap grids on disk, keyed by everything that determines them.

Layout under the store root::

    grids/<heatmap_key>/<image_sha[:2]>/<image_sha>.npz   one entry per image: probs + one array per method,
                                                          named by the method's name and definition version
    runs/<run_hash>/config.json, results.json, ...        one folder per run configuration

An entry is written to a temporary file in the same folder, flushed to disk and renamed into place:
``os.replace`` is atomic, so a reader sees either no entry or a whole one, whenever the writer is killed.
Two processes computing the same entry both write whole files; the last rename wins, and both are equal.
An entry that fails to load (disk corruption) is treated as missing and recomputed.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from surgery_core.files import atomic_write_bytes, cache_dir


class RunStore:
    """Grids keyed by (heatmap key, image content hash), and run folders keyed by run hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from surgery_core.errors import InputError

            raise InputError(self.root, f"cannot create the run store folder ({exc.strerror or exc})") from None

    def entry_path(self, key: str, image_sha: str) -> Path:
        return self.root / "grids" / key / image_sha[:2] / f"{image_sha}.npz"

    def has(self, key: str, image_sha: str) -> bool:
        return self.entry_path(key, image_sha).is_file()

    def put(self, key: str, image_sha: str, grids: dict[str, np.ndarray], probs: np.ndarray) -> None:
        """Store one image's raw grids (``{stored method name: [K, gh, gw]}``) and class probabilities ``[K]``.

        Grids already in the entry under other names are kept: an entry grows as methods are added.
        """
        old = self.get(key, image_sha)
        merged = dict(old[0]) if old is not None else {}
        merged.update(grids)
        buf = io.BytesIO()
        np.savez(buf, probs=probs.astype(np.float32), **{f"grid_{m}": g.astype(np.float32) for m, g in merged.items()})
        atomic_write_bytes(self.entry_path(key, image_sha), buf.getvalue())

    def stored_names(self, key: str, image_sha: str) -> set[str]:
        """Names of the grids an entry holds (empty when absent or unreadable); reads the zip index only."""
        try:
            with np.load(self.entry_path(key, image_sha)) as z:
                return {k[5:] for k in z.files if k.startswith("grid_")}
        except Exception:
            return set()

    def get(self, key: str, image_sha: str) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        """The stored grids and probabilities, or None when absent or unreadable."""
        path = self.entry_path(key, image_sha)
        try:
            with np.load(path) as z:
                grids = {k[5:]: z[k] for k in z.files if k.startswith("grid_")}
                return grids, z["probs"]
        except FileNotFoundError:
            return None
        except Exception:  # a damaged entry is recomputed, never served
            return None

    def run_dir(self, run_hash: str) -> Path:
        return self.root / "runs" / run_hash

    @staticmethod
    def run_record(run_dir: Path) -> dict | None:
        """The ``run.json`` of a run folder (what :meth:`Run.summary` said when the run was opened); None when
        absent or unreadable."""
        meta = Path(run_dir) / "run.json"
        if not meta.is_file():
            return None
        try:
            return json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def opened_at(self, run_dir: Path) -> str | None:
        """When the run of ``run_dir`` was last opened (ISO 8601, UTC, seconds), from its ``run.json``."""
        return (self.run_record(run_dir) or {}).get("finished")

    def list_runs(self) -> list[dict]:
        """Stored runs (newest first): hash, config, finished time, image count."""
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        out = [m for m in (self.run_record(d) for d in runs.iterdir() if not d.name.startswith("."))
               if m is not None]  # names starting with a dot: runs being deleted (see run/stored.py)
        return sorted(out, key=lambda m: m.get("finished", ""), reverse=True)


def default_store_root() -> Path:
    """``$SURGERY_STORE``, else ``store/`` in the cache folder."""
    root = os.environ.get("SURGERY_STORE")
    return Path(root) if root else cache_dir() / "store"


def default_store() -> RunStore:
    return RunStore(default_store_root())


def require_within(path: str | Path, roots: list[str | Path]) -> Path:
    """Resolve ``path`` (symlinks included) and refuse it unless it lies under one of ``roots``."""
    from surgery_core.errors import PathNotAllowedError

    resolved = Path(path).expanduser().resolve()
    for root in roots:
        r = Path(root).expanduser().resolve()
        if resolved == r or r in resolved.parents:
            return resolved
    where = "" if str(resolved) == str(path) else f" (resolves to {resolved})"
    allowed = ", ".join(str(Path(r).expanduser().resolve()) for r in roots) or "none"
    raise PathNotAllowedError(path, f"outside the configured data roots{where}; allowed roots: {allowed}")


__all__ = ["RunStore", "default_store", "default_store_root", "require_within"]
