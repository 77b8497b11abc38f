"""What the core finds at run time instead of importing: shipped model weights and generated datasets.

The core never imports an extension. An extension (the embedded demo world is one) declares an entry point
in the ``surgery_core.plugins`` group (see ``pyproject.toml``) naming a function that calls
:func:`register_model` and :func:`register_dataset`; :func:`load_plugins` calls those functions the first time
a model or a dataset kind is looked up. Registrations are cheap (names, paths, callables): an extension
imports its heavy parts inside the callables it registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from surgery_core.progress import Progress

ENTRY_POINT_GROUP = "surgery_core.plugins"


@dataclass(frozen=True)
class ShippedModel:
    """An architecture whose weights ship with an extension: ``load_model(arch)`` without a checkpoint loads
    ``weights``. ``prepare`` makes the architecture known to open_clip (idempotent); ``note_off_domain`` is the
    warning shown when the model is run on data of another kind than ``trained_on`` (a dataset kind)."""

    arch: str
    weights: Path
    prepare: Callable[[], None]
    trained_on: str
    note_off_domain: str = ""


@dataclass(frozen=True)
class GeneratedDataset:
    """A dataset kind an extension produces: ``root(bars)`` makes it (on first use) and returns its DIOR-layout
    folder; ``classes`` are its class names; ``name`` is what the app and reports call it."""

    kind: str
    name: str
    classes: tuple[str, ...]
    root: Callable[[Progress], Path]


MODELS: dict[str, ShippedModel] = {}
DATASETS: dict[str, GeneratedDataset] = {}
_loaded = False


def register_model(model: ShippedModel) -> None:
    MODELS[model.arch] = model


def register_dataset(dataset: GeneratedDataset) -> None:
    DATASETS[dataset.kind] = dataset


def load_plugins() -> None:
    """Call every installed extension's registration function once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()()


def shipped_model(arch: str) -> ShippedModel | None:
    """The extension that ships weights for ``arch``, if any (its architecture prepared for open_clip)."""
    load_plugins()
    for m in MODELS.values():
        m.prepare()  # an extension may define several architectures in one open_clip config folder
    return MODELS.get(arch)


def generated_dataset(kind: str) -> GeneratedDataset | None:
    load_plugins()
    return DATASETS.get(kind)

