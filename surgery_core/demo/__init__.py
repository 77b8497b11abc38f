"""Built-in demo material: procedural aerial scenes in DIOR's layout (``scenes``) for a model that needs no download.

The core never imports this package: :func:`register` is its ``surgery_core.plugins`` entry point
(``pyproject.toml``), and adds the demo model's shipped weights and the ``demo`` dataset kind to
:mod:`surgery_core.plugins`.
"""

from __future__ import annotations

from pathlib import Path

from surgery_core.progress import QUIET, Progress

DEMO_DATA_SEED = 1000  # never used for training scenes (training uses seed 0)
DEMO_DATA_COUNT = 1500  # 20% test split: 300 scenes
# What the dashboard, the reports and the snapshots call this dataset (``Dataset.name``), so that nobody cites the
# synthetic demo scenes as results on DIOR.
DEMO_DATASET_NAME = "demo world (synthetic scenes)"
OFF_DOMAIN_NOTE = ("The demo model was trained only on synthetic scenes: on real imagery its heatmaps and numbers "
                   "are noise, not a finding. Use a RemoteCLIP or CLIP checkpoint for real data.")


def demo_data_root(seed: int = DEMO_DATA_SEED, count: int = DEMO_DATA_COUNT, bars: Progress = QUIET) -> Path:
    """The demo scenes, generated on first use into the cache folder (deterministic for seed and count).

    The folder names the generator version too: scenes cached by an older generator are never reused."""
    from filelock import FileLock

    from surgery_core.demo.scenes import GENERATOR_VERSION, generate_dataset
    from surgery_core.files import cache_dir

    root = cache_dir() / "demo-data" / f"seed{seed}-n{count}-g{GENERATOR_VERSION}"
    if not (root / ".complete").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root) + ".lock"):  # two first uses at once: one generates, the other waits
            if not (root / ".complete").is_file():
                with bars.bar(f"demo scenes (first use, into {root.parent})", count, "scene") as bar:
                    generate_dataset(root, seed=seed, count=count, overwrite=True, progress=bar.update)
    return root


def register() -> None:
    """The ``surgery_core.plugins`` entry point: the demo model's weights and the ``demo`` dataset kind."""
    from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS, register_demo_models
    from surgery_core.demo.scenes import DEMO_CLASSES
    from surgery_core.plugins import GeneratedDataset, ShippedModel, register_dataset, register_model

    register_model(ShippedModel(DEMO_ARCH, DEMO_WEIGHTS, register_demo_models, trained_on="demo",
                                note_off_domain=OFF_DOMAIN_NOTE))
    register_dataset(GeneratedDataset("demo", DEMO_DATASET_NAME, tuple(DEMO_CLASSES),
                                      lambda bars: demo_data_root(bars=bars)))
