"""``surgery models pull``: the only code that downloads weights, and only when asked.

Hub entries go through ``huggingface_hub.hf_hub_download`` into the Hugging Face cache (its proxies, ``HF_ENDPOINT``,
``HF_HUB_CACHE``, tokens, and resuming a dropped connection within the pull, included); URL entries are a plain HTTPS download into
``<models folder>/<name>/`` under a ``.part`` name, renamed into place only once whole and checked. Either way the
file's size and sha256 are checked against the catalog; a mismatch removes the file and is refused, so nothing that
is not the published file is ever found under a final name. ``HF_HUB_OFFLINE=1`` (read at call time) and an
unreachable server give one line naming the URL and the exact path to put a hand-copied file at.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from surgery_core.errors import CheckpointError, InputError
from surgery_core.files import content_sha256
from surgery_core.model.catalog import CatalogEntry
from surgery_core.model.local_models import Located, hf_cache_dir, locate, models_dir, record_verified, \
    target_path, verified_sha256

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_CHUNK = 1 << 20


class OfflineError(InputError):
    """The weights' server cannot be reached (or offline mode is on): nothing was downloaded."""


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def source_url(entry: CatalogEntry) -> str:
    """The URL ``entry`` is downloaded from here (``$HF_ENDPOINT`` applied to hub files)."""
    if entry.repo:
        return f"{hub_endpoint()}/{entry.repo}/resolve/{entry.revision or 'main'}/{entry.file}"
    return entry.url or ""


def _offline(entry: CatalogEntry, why: str, root: Path | None) -> OfflineError:
    sha = f" (sha256 {entry.sha256})" if entry.sha256 else ""
    inside = "the checkpoint inside " if entry.archive else ""
    return OfflineError(None, f"no network for model {entry.name}: {source_url(entry)} cannot be reached ({why}); "
                              f"download {inside}it elsewhere and put it at {target_path(entry, root)}{sha}")


def check_file(entry: CatalogEntry, path: Path) -> str:
    """The sha256 of ``path`` after checking its size and hash against the catalog's (where published);
    CheckpointError naming the file and both values otherwise."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise CheckpointError(path, f"{size:,} bytes, but {entry.name}'s published file has {entry.size:,}: "
                                    "incomplete or another file")
    sha = content_sha256(path)
    if entry.sha256 and sha != entry.sha256:
        raise CheckpointError(path, f"sha256 {sha} differs from {entry.name}'s published {entry.sha256}")
    return sha


def pull(entry: CatalogEntry, *, tqdm_class=None, root: Path | None = None) -> Located:
    """Download ``entry``'s weights unless they are here and verified; check size and sha256; record them.

    tqdm_class: the progress bar class (a tqdm subclass; None = huggingface_hub's and tqdm's default on stderr).
    Raises OfflineError with no network, CheckpointError on a size or hash mismatch (the file removed),
    InputError for anything else the server refuses."""
    if entry.registered:
        raise InputError(None, f"model {entry.name} is your own registered file ({entry.checkpoint}): nothing to pull")
    root = root or models_dir()
    here = locate(entry, root)
    if here is not None:
        if entry.sha256 is None or verified_sha256(here.path, root) == entry.sha256:
            return here
        try:
            record_verified(here.path, check_file(entry, here.path), root)
            return here
        except CheckpointError:
            if here.where != "models folder":
                raise  # the Hugging Face cache is the user's: say so, remove nothing there unasked
            here.path.unlink()  # a wrong file under our final name: replaced by the download below
    if offline_mode():
        raise _offline(entry, "offline mode: HF_HUB_OFFLINE is set", root)
    if entry.repo:
        path, where = _pull_hub(entry, tqdm_class, root), "Hugging Face cache"
    else:
        path, where = _pull_url(entry, tqdm_class, root), "models folder"
    return Located(path, where)


def _pull_hub(entry: CatalogEntry, tqdm_class, root: Path) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    rev = entry.revision or "main"
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its "trying to resume" warnings: the outcome is said in one line below
    try:
        got = Path(hf_hub_download(entry.repo, entry.file, revision=rev, cache_dir=hf_cache_dir(),
                                   endpoint=hub_endpoint(), tqdm_class=tqdm_class))
    except OfflineModeIsEnabled:
        raise _offline(entry, "offline mode: HF_HUB_OFFLINE is set", root) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise InputError(None, f"model {entry.name}: the hub refuses {entry.repo}@{rev} "
                               f"({_first_line(exc)})") from None
    except LocalEntryNotFoundError as exc:  # the metadata request failed: no connection, and nothing cached
        raise _offline(entry, _cause(exc), root) from None
    except (EntryNotFoundError, HfHubHTTPError) as exc:
        raise InputError(None, f"model {entry.name}: {source_url(entry)} failed ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a dropped connection surfaces as the HTTP client's own error types
        raise InputError(None, f"model {entry.name}: the download from {source_url(entry)} was interrupted "
                               f"({type(exc).__name__}: {_first_line(exc)}); huggingface_hub retried and "
                               "resumed it 5 times; nothing was kept: run the pull again") from None
    finally:
        hub_log.setLevel(level)
    try:
        sha = check_file(entry, got)
    except CheckpointError:
        _remove_cached(got)
        raise
    record_verified(got, sha, root)
    return got


def _remove_cached(snapshot_file: Path) -> None:
    """Remove a Hugging Face cache file: its blob and the snapshot link to it."""
    blob = snapshot_file.resolve()
    for p in {blob, snapshot_file}:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _pull_url(entry: CatalogEntry, tqdm_class, root: Path) -> Path:
    final = target_path(entry, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.parent / f".{final.name}.{'zip.' if entry.archive else ''}part"
    try:
        _http_download(entry, part, tqdm_class, root)
        if entry.archive == "zip":
            weights = final.parent / f".{final.name}.part"
            _extract_weights(part, weights)
            part.unlink()
            part = weights
        sha = check_file(entry, part)
        os.replace(part, final)
    finally:
        for leftover in (part, final.parent / f".{final.name}.part"):
            if leftover.exists() and leftover != final:
                leftover.unlink()
    record_verified(final, sha, root)
    return final


def _http_download(entry: CatalogEntry, dest: Path, tqdm_class, root: Path) -> None:
    url = source_url(entry)
    try:
        response = urllib.request.urlopen(url, timeout=30)  # noqa: S310 - the catalog's https URL
    except urllib.error.HTTPError as exc:
        raise InputError(None, f"model {entry.name}: {url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _offline(entry, str(getattr(exc, "reason", exc)), root) from None
    total = int(response.headers.get("Content-Length") or 0) or None
    bar_args = {}
    if tqdm_class is None:  # on a terminal, as huggingface_hub's bars (and HF_HUB_DISABLE_PROGRESS_BARS too)
        from tqdm import tqdm as tqdm_class

        bar_args["disable"] = bool(os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")) or not sys.stderr.isatty()
    got = 0
    with response, open(dest, "wb") as f, tqdm_class(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                                     desc=entry.name, **bar_args) as bar:
        try:
            while block := response.read(_CHUNK):
                f.write(block)
                got += len(block)
                bar.update(len(block))
        except (OSError, ValueError) as exc:  # a dropped connection mid-body
            raise InputError(None, f"model {entry.name}: the download from {url} was interrupted after {got:,} "
                                   f"bytes ({_first_line(exc) or type(exc).__name__}); nothing was kept") from None
    if total is not None and got != total:
        raise InputError(None, f"model {entry.name}: the download from {url} was interrupted after {got:,} of "
                               f"{total:,} bytes; nothing was kept")


def _extract_weights(archive: Path, dest: Path) -> None:
    """The one weights file of a zip archive, written to ``dest``."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if m.filename.lower().endswith(_WEIGHT_SUFFIXES) and not m.is_dir()]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "none"
                raise InputError(archive, f"expected one weights file in the archive, found {names}")
            with z.open(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    except zipfile.BadZipFile as exc:
        raise InputError(archive, f"not a readable zip archive ({exc})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _cause(exc: BaseException) -> str:
    """The root of an exception chain, in one line (huggingface_hub wraps the connection error)."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return _first_line(seen) or type(seen).__name__
