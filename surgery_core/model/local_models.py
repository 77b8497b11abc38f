"""Models on this machine: the models folder, its index of registered checkpoints, and where a named model's file is.

The models folder is ``$SURGERY_MODELS`` (default ``<cache folder>/models``). A catalog model's file is found, in
this order, at ``<models folder>/<name>/<file name>`` (a pulled URL file, or one copied there by hand) or in the
Hugging Face cache (``$HF_HUB_CACHE``, where ``surgery models pull`` and open_clip put hub files). A registered model
(``surgery models add``) is the user's own file, named in ``<models folder>/index.json`` with its architecture,
QuickGELU and sha256. Nothing here touches the network or loads torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from surgery_core.errors import InputError
from surgery_core.files import atomic_write_text, cache_dir
from surgery_core.model.catalog import CATALOG, CatalogEntry

INDEX_FILE = "index.json"
#: A model name: what one types after --model (lower case, digits, '.', '-', '_').
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def models_dir() -> Path:
    """The models folder: ``$SURGERY_MODELS``, or ``models/`` under the cache folder."""
    env = os.environ.get("SURGERY_MODELS")
    return Path(env).expanduser() if env else cache_dir() / "models"


def _index_path(root: Path | None = None) -> Path:
    return (root or models_dir()) / INDEX_FILE


def read_index(root: Path | None = None) -> dict:
    """The models folder's index (``{"registered": {...}, "verified": {...}}``); empty when there is none."""
    path = _index_path(root)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"registered": {}, "verified": {}}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"the models index cannot be read ({exc}); fix or remove it") from None
    if not isinstance(doc, dict):
        raise InputError(path, "the models index is not a JSON object; fix or remove it")
    doc.setdefault("registered", {})
    doc.setdefault("verified", {})
    return doc


def _write_index(doc: dict, root: Path | None = None) -> None:
    atomic_write_text(_index_path(root), json.dumps(doc, indent=2, sort_keys=True) + "\n")


def registered_models(root: Path | None = None) -> dict[str, CatalogEntry]:
    """The models registered with ``surgery models add``, by name."""
    out = {}
    for name, rec in read_index(root)["registered"].items():
        out[name] = CatalogEntry(
            name=name, title=f"{name} (registered)", arch=rec["arch"], quickgelu=bool(rec["quickgelu"]),
            init="user", input_size=int(rec.get("input_size") or 0), licence="the user's own",
            citation="", size=rec.get("size"), sha256=rec.get("sha256"), checkpoint=rec["checkpoint"])
    return out


def all_models(root: Path | None = None) -> dict[str, CatalogEntry]:
    """Catalog entries, then registered models."""
    return {**CATALOG, **registered_models(root)}


def find_model(name: str, root: Path | None = None) -> CatalogEntry:
    """The catalog entry or registered model called ``name``; InputError listing the known names otherwise."""
    if name in CATALOG:
        return CATALOG[name]
    mine = registered_models(root)
    if name in mine:
        return mine[name]
    known = ", ".join(CATALOG) + (f"; registered here: {', '.join(mine)}" if mine else "")
    raise InputError(None, f"unknown model {name!r}: the catalog has {known} (see 'surgery models'; "
                           "'surgery models add' registers your own checkpoint)")


def check_new_name(name: str) -> None:
    """InputError unless ``name`` can name a registered model (well formed, not a catalog entry's)."""
    if not NAME_RE.match(name):
        raise InputError(None, f"model name {name!r}: use lower-case letters, digits, '.', '-' or '_' "
                               "(at most 64 characters, starting with a letter or digit)")
    if name in CATALOG:
        raise InputError(None, f"model name {name!r} is a catalog entry; choose another name")


def register(name: str, arch: str, checkpoint: Path, quickgelu: bool, sha256: str, size: int, input_size: int,
             root: Path | None = None) -> CatalogEntry:
    """Record a user's checkpoint under ``name`` in the models folder's index (the file stays where it is)."""
    check_new_name(name)
    doc = read_index(root)
    doc["registered"][name] = {
        "arch": arch, "quickgelu": bool(quickgelu), "checkpoint": str(Path(checkpoint).resolve()),
        "sha256": sha256, "size": int(size), "input_size": int(input_size),
        "added": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    _write_index(doc, root)
    return registered_models(root)[name]


def target_path(entry: CatalogEntry, root: Path | None = None) -> Path:
    """Where the models folder keeps ``entry``'s file (a registered model: the user's own file)."""
    if entry.registered:
        return Path(entry.checkpoint)
    return (root or models_dir()) / entry.name / entry.local_name


@dataclass(frozen=True)
class Located:
    """A model's file on this machine, and where it was found ("models folder", "Hugging Face cache",
    "registered file")."""

    path: Path
    where: str


def hf_cache_dir() -> str | None:
    """``$HF_HUB_CACHE`` as set now (huggingface_hub reads it once, at import); None = its default."""
    return os.environ.get("HF_HUB_CACHE") or None


def hub_cached(entry: CatalogEntry) -> Path | None:
    """The file of a hub entry in the Hugging Face cache (no network), or None."""
    if not entry.repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # huggingface_hub comes with open_clip; without it there is no cache to look in
        return None
    found = try_to_load_from_cache(entry.repo, entry.file, revision=entry.revision or "main",
                                   cache_dir=hf_cache_dir())
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def locate(entry: CatalogEntry, root: Path | None = None) -> Located | None:
    """Where ``entry``'s file is on this machine, or None (nothing is downloaded)."""
    path = target_path(entry, root)
    if path.is_file():
        return Located(path, "registered file" if entry.registered else "models folder")
    if entry.registered:
        return None
    cached = hub_cached(entry)
    return Located(cached, "Hugging Face cache") if cached else None


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_verified(path: Path, sha256: str, root: Path | None = None) -> None:
    """Remember that ``path`` (as it is now: size and modification time) has content ``sha256``."""
    doc = read_index(root)
    doc["verified"][str(Path(path).resolve())] = {"sha256": sha256, **_stat_key(Path(path))}
    _write_index(doc, root)


def verified_sha256(path: Path, root: Path | None = None) -> str | None:
    """The sha256 recorded for ``path`` when it was last verified, if the file has not changed since."""
    try:
        rec = read_index(root)["verified"].get(str(Path(path).resolve()))
        return rec["sha256"] if rec and {k: rec.get(k) for k in ("size", "mtime_ns")} == _stat_key(Path(path)) \
            else None
    except (OSError, InputError):
        return None


def missing_message(entry: CatalogEntry, root: Path | None = None) -> str:
    """The one line that says a model is not on this machine: how to pull it, or where to put a copied file."""
    if entry.registered:
        return (f"model {entry.name}: its registered checkpoint {entry.checkpoint} is gone; register it again with "
                f"'surgery models add {entry.name} --arch {entry.arch} --checkpoint FILE'")
    sha = f", sha256 {entry.sha256}" if entry.sha256 else ""
    fetched = (f"the checkpoint inside {entry.download_url}" if entry.archive else entry.download_url)
    return (f"model {entry.name} is not on this machine: run 'surgery models pull {entry.name}' (network), or put "
            f"{fetched} at {target_path(entry, root)}{sha}")


def model_rows() -> list[dict]:
    """One row per catalog entry and registered model: its facts and where its file is here (or None)."""
    rows = []
    for entry in all_models().values():
        found = locate(entry)
        verified = bool(found and entry.sha256 and verified_sha256(found.path) == entry.sha256)
        rows.append({"name": entry.name, "title": entry.title, "arch": entry.arch, "quickgelu": entry.quickgelu,
                     "size": entry.size, "sha256": entry.sha256, "source": entry.source, "licence": entry.licence,
                     "registered": entry.registered, "present": found is not None,
                     "where": found.where if found else None, "path": str(found.path) if found else None,
                     "sha256_verified": verified})
    return rows
