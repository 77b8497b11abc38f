"""What the operator of a dashboard server configured: the default run, the data roots a link or a text box may
name, the run store and the snapshots folder beside it.

Environment variables:

``SURGERY_DASHBOARD_CONFIG``  the run the app opens with no ``run`` URL parameter: a RunConfig document (JSON text
                              or a JSON file), plus an optional dashboard-only ``data_roots`` list (folders; relative
                              ones from the config file's folder), which is not part of the run (nor of its hash);
``SURGERY_DATA_ROOTS``        more data roots, separated by ``os.pathsep``;
``SURGERY_STORE``             the run store (:func:`surgery_core.run.store.default_store_root`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from surgery_core.run.config import RunConfig
from surgery_core.run.store import RunStore, default_store
from surgery_core.share.snapshots import SnapshotStore

ENV_DEFAULT_CONFIG = "SURGERY_DASHBOARD_CONFIG"
ENV_DATA_ROOTS = "SURGERY_DATA_ROOTS"


def app_default_config() -> RunConfig:
    """The run the app opens with no ``run`` parameter: ``$SURGERY_DASHBOARD_CONFIG`` (JSON text or a JSON
    file) when set, else ``RunConfig()`` (the demo run)."""
    return _dashboard_config(os.environ.get(ENV_DEFAULT_CONFIG, "").strip())[0]


def configured_data_roots() -> tuple[Path, ...]:
    """The data roots the operator configured: ``data_roots`` of ``$SURGERY_DASHBOARD_CONFIG`` (relative ones
    from the config file's folder) and ``$SURGERY_DATA_ROOTS`` (os.pathsep-separated); () when neither."""
    env = tuple(Path(r).expanduser() for r in os.environ.get(ENV_DATA_ROOTS, "").split(os.pathsep) if r.strip())
    return _dashboard_config(os.environ.get(ENV_DEFAULT_CONFIG, "").strip())[1] + env


@lru_cache(maxsize=8)
def _dashboard_config(spec: str) -> tuple[RunConfig, tuple[Path, ...]]:
    """The dashboard configuration: a RunConfig document (JSON text or a JSON file) plus an optional
    dashboard-only ``data_roots`` list, which is not part of the run (nor of its hash)."""
    if not spec:
        return RunConfig(), ()
    if spec.startswith("{"):
        text, base = spec, Path.cwd()
    else:
        path = Path(spec).expanduser()
        text, base = path.read_text(), path.resolve().parent
    doc = json.loads(text)
    roots = doc.pop("data_roots", None) if isinstance(doc, dict) else None
    if roots is None:
        roots = []
    if isinstance(roots, str) or not all(isinstance(r, str) and r.strip() for r in roots):
        raise ValueError(f"{ENV_DEFAULT_CONFIG}: data_roots must be a list of folder paths, got {roots!r}")
    return RunConfig.model_validate(doc), tuple(base / Path(r).expanduser() for r in roots)


def allowed_roots() -> list[Path]:
    """Where the dashboard may read datasets and checkpoints named in a text box or a link.

    The configured roots (``data_roots`` of ``$SURGERY_DASHBOARD_CONFIG`` and ``$SURGERY_DATA_ROOTS``), or,
    with none configured, the cache folder (demo scenes) and the run store; always the files shipped with
    the package (real DIOR samples, demo weights) and the paths of the app's default run (the operator's)."""
    from surgery_core.demo.model import WEIGHTS_DIR
    from surgery_core.files import cache_dir
    from surgery_core.run.engine import SAMPLES_ROOT

    roots = list(configured_data_roots()) or [cache_dir(), run_store().root]
    d = app_default_config()
    operator = [Path(p) for p in (d.data.root, d.data.images, d.model.checkpoint) if p]
    return roots + [SAMPLES_ROOT, WEIGHTS_DIR] + operator


def run_store() -> RunStore:
    """The run store every session opens runs from (``$SURGERY_STORE``, else ``store/`` in the cache folder)."""
    return default_store()


def snapshot_store() -> SnapshotStore:
    """The snapshots folder next to the run store (``$SURGERY_STORE/snapshots``)."""
    return SnapshotStore.for_store(run_store())
