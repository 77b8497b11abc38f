"""Stored views of the dashboard: :class:`SnapshotStore`.

A snapshot keeps what a dashboard view shows (its state: page, run configuration and hash, sample, class,
methods, thresholds; the numbers and the images on screen), with a title, a note, a UTC time and a schema
version, in ONE zip file per snapshot written atomically. A snapshot opens after the run store and the dataset
are gone. Damaged files and other schema versions are listed with an ``error`` and never break the listing; ids
are validated, so no title or id reaches outside the folder. This module needs neither torch nor the engine: a
snapshot opens where only numpy is installed.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from surgery_core.eval.boxes import BoxRule, cut_label
from surgery_core.eval.protocols import Cell
from surgery_core.eval.rules import cut_from_label
from surgery_core.errors import SurgeryError
from surgery_core.files import atomic_write_bytes
from surgery_core.share.portable import clean_text, jsonable, slug, zip_bytes

if TYPE_CHECKING:
    from surgery_core.run.facade import Run

SNAPSHOT_SCHEMA = 1
SNAPSHOT_SUFFIX = ".snapshot.zip"


class SnapshotError(SurgeryError):
    """A snapshot cannot be saved, found or read (the message says which and why)."""


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")  # ids we make: YYYYmmddTHHMMSSZ-<slug>-<8 hex>


@dataclass(frozen=True)
class SnapshotMeta:
    """One entry of :meth:`SnapshotStore.list`. ``error`` is set (and the rest may be empty) when the file
    cannot be read or has another schema version."""

    id: str
    title: str = ""
    note: str = ""
    created: str = ""  # ISO 8601, UTC
    schema: int | None = None
    run_hash: str | None = None
    page: str | None = None
    size: int = 0
    image_count: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Snapshot:
    """A stored view: its state, the numbers and the images it showed."""

    meta: SnapshotMeta
    state: dict
    numbers: dict
    images: dict[str, bytes]

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def note(self) -> str:
        return self.meta.note

    @property
    def created(self) -> str:
        return self.meta.created


def view_state(run: "Run | None" = None, page: str = "", *, image_index: int | None = None,
               class_index: int | None = None, cells: Sequence[Cell] | None = None,
               methods: list[str] | tuple[str, ...] | None = None, percentile: float | None = None,
               iou: float | None = None, protocol: str | None = None, interp: str | None = None, **extra) -> dict:
    """A snapshot state dict: page, run configuration and hash, sample (index and id), class (index and name), the
    boxes shown and thresholds; ``extra`` keys are kept as they are (JSON values).

    The boxes shown: ``cells`` (a view's :class:`~surgery_core.eval.protocols.Cell` per method) are kept under one
    key, ``"cells"`` (``Cell.to_json`` each); a view that shows no cell (only methods, or only the run's box rule)
    passes ``methods`` and ``percentile`` (a cut) instead, kept as separate keys as every snapshot before cells
    was (``methods``, ``percentile``, ``protocol``, and ``box_rule`` in words for a rule other than the
    percentile). :func:`shown_cells` and :func:`separate_fields` read both layouts."""
    state: dict = {"page": page}
    if run is not None:
        state |= {"run_hash": run.run_hash, "run_label": run.label, "config": run.cfg.to_file_dict(),
                  "model": run.model_info, "dataset": run.dataset.name, "split": run.dataset.split}
        if image_index is not None:
            state["image_id"] = str(run.dataset.images[image_index].image_id)
        if class_index is not None:
            state["class"] = run.classes[class_index]
    state |= {"image_index": image_index, "class_index": class_index}
    if cells is not None:
        if methods is not None or percentile is not None or protocol is not None:
            raise ValueError("a snapshot state names its boxes by cells or by methods/percentile/protocol, not both")
        state["cells"] = [c.to_json() for c in cells]
    else:
        state |= {"methods": list(methods) if methods is not None else (list(run.cfg.methods) if run else None),
                  "percentile": percentile if percentile is not None else (run.cfg.boxes.cut if run else None)}
    state |= {"iou": iou}
    if cells is None:
        state["protocol"] = protocol
    state["interp"] = interp
    if isinstance(state.get("percentile"), BoxRule):  # another box rule: named, no percentile
        state["box_rule"], state["percentile"] = cut_label(state["percentile"]), None
    return jsonable(state | extra)


def shown_cells(state: dict) -> list[Cell]:
    """The cells a snapshot state shows, from either layout (:func:`view_state`): its ``cells``, or, in a state with
    separate keys, each of its ``methods`` under its ``protocol`` at its ``percentile`` (or ``box_rule``); none
    when the state names no protocol or no cut."""
    if state.get("cells") is not None:
        return [Cell.from_json(d) for d in state["cells"]]
    cut = state.get("percentile")
    if cut is None and state.get("box_rule"):
        cut = cut_from_label(state["box_rule"])
    if not state.get("protocol") or cut is None:
        return []
    return [Cell.of(m, state["protocol"], cut) for m in state.get("methods") or ()]


def separate_fields(state: dict) -> dict:
    """The state with its cells written as the separate keys of snapshots before cells (``methods``, ``protocol``,
    ``percentile``, ``box_rule`` for another rule): what a snapshot's settings table shows, the same for either
    layout. A state without ``cells`` is returned as it is."""
    if state.get("cells") is None:
        return dict(state)
    cells = shown_cells(state)
    out = {k: v for k, v in state.items() if k != "cells"}
    cuts = list(dict.fromkeys(c.cut for c in cells))
    out |= {"methods": list(dict.fromkeys(c.method for c in cells)),
            "protocol": ", ".join(dict.fromkeys(c.protocol.name for c in cells)) or None}
    if len(cuts) == 1 and not isinstance(cuts[0], BoxRule):
        out["percentile"] = cuts[0]
    else:
        out["percentile"] = None
        out["box_rule"] = ", ".join(cut_label(c) for c in cuts) or None
    return out


def _now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _image_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.lstrip()[:5] in (b"<svg ", b"<?xml"):
        return "svg"
    return "bin"


class SnapshotStore:
    """Snapshots of dashboard views, one ``<id>.snapshot.zip`` per snapshot under ``root``.

    A file holds ``snapshot.json`` (schema, id, title, note, created, state, numbers, image index) and the
    images as ``images/NNN.<ext>``. Default root: ``<run store root>/snapshots``.
    """

    def __init__(self, root: str | Path | None = None):
        if root is None:
            from surgery_core.run.store import default_store

            root = default_store().root / "snapshots"
        self.root = Path(root).expanduser()

    @classmethod
    def for_store(cls, store) -> "SnapshotStore":
        return cls(Path(store.root) / "snapshots")

    # ------------------------------------------------------------------------------------------ paths
    @staticmethod
    def validate_id(snapshot_id: str) -> str:
        """The id itself when it names a file in the store (letters, digits, ``._-``, no leading dot, no
        ``..``, no separators, NUL or other characters), else :class:`SnapshotError`."""
        if not isinstance(snapshot_id, str) or not _ID_RE.fullmatch(snapshot_id) or ".." in snapshot_id:
            raise SnapshotError(f"not a snapshot id: {snapshot_id!r}")
        return snapshot_id

    def path_of(self, snapshot_id: str) -> Path:
        path = self.root / (self.validate_id(snapshot_id) + SNAPSHOT_SUFFIX)
        if path.parent.resolve() != self.root.resolve():  # belt and braces: never outside the root
            raise SnapshotError(f"not a snapshot id: {snapshot_id!r}")
        return path

    def new_id(self, title: str, when: _dt.datetime | None = None) -> str:
        when = when or _now_utc()
        return f"{when.strftime('%Y%m%dT%H%M%SZ')}-{slug(title)}-{secrets.token_hex(4)}"

    # ------------------------------------------------------------------------------------------ writing
    def save(self, state: dict, title: str, note: str = "", numbers: dict | None = None,
             images: dict[str, bytes] | None = None) -> str:
        """Store one snapshot atomically; returns its id. ``state`` and ``numbers`` must be JSON values
        (numpy scalars/arrays are converted, NaN becomes null); ``images`` maps any name to image bytes."""
        title = clean_text(title, 200) or "untitled"
        note = clean_text(note, 10_000)
        if not isinstance(state, dict):
            raise SnapshotError("a snapshot state is a dict")
        try:
            state_j, numbers_j = jsonable(state), jsonable(numbers or {})
        except TypeError as exc:
            raise SnapshotError(f"a snapshot holds JSON values only: {exc}") from None
        images = images or {}
        index, members = [], []
        for k, (name, data) in enumerate(images.items()):
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise SnapshotError(f"image {name!r} is {type(data).__name__}, not bytes")
            member = f"images/{k:03d}.{_image_ext(bytes(data))}"
            index.append({"name": str(name), "member": member, "bytes": len(data)})
            members.append((member, bytes(data)))
        when = _now_utc()
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            sid = self.new_id(title, when)
            path = self.path_of(sid)
            if not path.exists():
                break
        else:  # pragma: no cover - 8 collisions of 32 random bits
            raise SnapshotError("could not find a free snapshot id")
        doc = {"schema": SNAPSHOT_SCHEMA, "kind": "surgery-snapshot", "id": sid, "title": title, "note": note,
               "created": when.isoformat().replace("+00:00", "Z"), "run_hash": state_j.get("run_hash"),
               "page": state_j.get("page"), "state": state_j, "numbers": numbers_j, "images": index}
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1).encode()
        atomic_write_bytes(path, zip_bytes([("snapshot.json", body)] + members))
        return sid

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot (damaged ones included); an unknown id is an error."""
        path = self.path_of(snapshot_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id!r} in {self.root}") from None

    # ------------------------------------------------------------------------------------------ reading
    def _read(self, path: Path, with_images: bool) -> tuple[SnapshotMeta, dict, dict[str, bytes]]:
        sid = path.name[: -len(SNAPSHOT_SUFFIX)]
        size = path.stat().st_size
        try:
            with zipfile.ZipFile(path) as z:
                doc = json.loads(z.read("snapshot.json").decode("utf-8"))
                if not isinstance(doc, dict):
                    raise ValueError("snapshot.json is not an object")
                schema = doc.get("schema")
                if not isinstance(schema, int) or isinstance(schema, bool):
                    raise ValueError(f"snapshot.json has no schema version ({schema!r})")
                if schema != SNAPSHOT_SCHEMA:
                    side = "older" if schema < SNAPSHOT_SCHEMA else "newer"
                    hint = "" if side == "older" else "; update surgery_core to open it"
                    meta = SnapshotMeta(id=sid, title=str(doc.get("title", "")), note=str(doc.get("note", "")),
                                        created=str(doc.get("created", "")), schema=schema, size=size,
                                        error=f"schema version {schema} is {side} than the version this "
                                              f"program reads ({SNAPSHOT_SCHEMA}){hint}")
                    return meta, {}, {}
                for key in ("title", "note", "created", "state", "numbers", "images"):
                    if key not in doc:
                        raise ValueError(f"snapshot.json lacks {key!r}")
                images: dict[str, bytes] = {}
                if with_images:
                    for item in doc["images"]:
                        images[item["name"]] = z.read(item["member"])
                meta = SnapshotMeta(id=sid, title=str(doc["title"]), note=str(doc["note"]),
                                    created=str(doc["created"]), schema=schema, run_hash=doc.get("run_hash"),
                                    page=doc.get("page"), size=size, image_count=len(doc["images"]))
                return meta, doc, images
        except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError, OSError, TypeError,
                EOFError, RuntimeError, NotImplementedError, zipfile.LargeZipFile) as exc:
            what = {zipfile.BadZipFile: "not a zip file (damaged or truncated)",
                    json.JSONDecodeError: "snapshot.json is not valid JSON"}.get(type(exc))
            msg = what or f"{type(exc).__name__}: {exc}"
            return SnapshotMeta(id=sid, size=size, error=f"unreadable snapshot: {msg}"), {}, {}

    def list(self, query: str = "") -> list[SnapshotMeta]:
        """Snapshots, newest first; ``query`` keeps those whose title, note or id contain every word of it
        (case-insensitive). Unreadable files are listed with ``error`` set."""
        if not self.root.is_dir():
            return []
        words = [w for w in str(query or "").casefold().split() if w]
        out = []
        for path in self.root.iterdir():
            name = path.name
            if name.startswith(".") or not name.endswith(SNAPSHOT_SUFFIX) or not path.is_file():
                continue
            try:
                meta, _, _ = self._read(path, with_images=False)
                mtime = path.stat().st_mtime
            except OSError as exc:  # vanished between listing and reading
                meta, mtime = SnapshotMeta(id=name[: -len(SNAPSHOT_SUFFIX)], error=f"unreadable snapshot: {exc}"), 0
            hay = f"{meta.title}\n{meta.note}\n{meta.id}".casefold()
            if all(w in hay for w in words):
                out.append((meta.created or _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"),
                            meta.id, meta))
        out.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [m for _, _, m in out]

    def load(self, snapshot_id: str) -> Snapshot:
        """The whole snapshot (state, numbers, images): needs nothing but its file."""
        path = self.path_of(snapshot_id)
        if not path.is_file():
            raise SnapshotError(f"no snapshot {snapshot_id!r} in {self.root}")
        meta, doc, images = self._read(path, with_images=True)
        if meta.error:
            raise SnapshotError(f"snapshot {snapshot_id}: {meta.error}")
        return Snapshot(meta=meta, state=doc["state"], numbers=doc["numbers"], images=images)
