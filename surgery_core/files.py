"""Files the library writes and reads: atomic writes, strict JSON, content hashes, the cache folder.

Every result file is written to a temporary file in the same folder, flushed to disk and renamed into place:
``os.replace`` is atomic, so a reader sees either no file or a whole one, whenever the writer is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def shared_mode(bits: int) -> int:
    """``bits`` (0o666 for a file, 0o777 for a folder) under the process umask, read once at import: temporary
    files and folders are created private, and results are meant to be shared like any file the user makes.
    (Reading the umask means setting it; doing that per write would race with other threads creating files.)"""
    return bits & ~_UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, shared_mode(0o666))  # mkstemp makes 0600; results are meant to be shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, doc) -> None:
    """Strict JSON (NaN refused: callers turn it into null), written atomically."""
    atomic_write_text(Path(path), json.dumps(doc, indent=2, allow_nan=False) + "\n")


def content_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes: what keys the store on what a checkpoint or an image really holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where generated demo data and the default run store live (``$SURGERY_CACHE`` or ~/.cache/surgery)."""
    return Path(os.environ.get("SURGERY_CACHE", Path.home() / ".cache" / "surgery")).expanduser()
