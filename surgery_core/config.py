"""A run is one validated configuration object, hashed, stored beside its results and shown in the app.

Every entry point (CLI, app, tests) builds it the same way: ``RunConfig(**fields)`` or
``RunConfig.from_file(path)``. ``run_hash`` covers everything that changes a number; ``heatmap_key``
covers only what changes the raw grids, so box and metric settings never trigger a forward pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .boxes import DEFAULT_SWEEP_PERCENTILES, BoxParams
from .methods import DEFAULT_METHODS, METHODS
from .prompts import DEFAULT_PROMPT_SET, PROMPT_SETS, prompt_set_fingerprint

# Bump when the grid computation changes in a way the other key fields do not capture.
HEATMAP_VERSION = 1
SEED_IOUS = (0.05, 0.10, 0.15, 0.20, 0.30, 0.50)
SEED_QUALITY_PERCENTILES = (75.0, 80.0, 85.0, 90.0, 95.0)
DEMO_DATA_SEED = 1000  # never used for training scenes (training uses seed 0)
DEMO_DATA_COUNT = 1500  # 20% test split: 300 scenes


def cache_dir() -> Path:
    """Where generated demo data and the default run store live (``$SURGERY_CACHE`` or ~/.cache/surgery)."""
    return Path(os.environ.get("SURGERY_CACHE", Path.home() / ".cache" / "surgery")).expanduser()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    kind: Literal["demo", "dior", "coco", "samples"] = Field(
        "demo", description="demo: generated scenes; samples: the five real DIOR pairs shipped; dior; coco")
    root: str | None = Field(None, description="DIOR root, or the COCO annotation JSON")
    images: str | None = Field(None, description="image folder for COCO")
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="first N images of the split")


class ModelConfig(_Frozen):
    arch: str = "Demo-ViT-32"
    checkpoint: str | None = Field(None, description="local state dict; None with the demo arch = shipped weights")
    quickgelu: bool = False


class InputConfig(_Frozen):
    size: int | None = Field(None, ge=32, description="square input side in px; None = the model's own")
    window: int | None = Field(None, ge=32, description="sliding-window side in px; None = one pass")
    stride: int | None = Field(None, ge=1, description="sliding-window stride in px; None = the window")


#: (section, field, default) of fields left out of the run hash while at their default.
_HASH_NEUTRAL_DEFAULTS = (("boxes", "refine", "none"),)


class RunConfig(_Frozen):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    methods: tuple[str, ...] = DEFAULT_METHODS
    surgery_depth: int = Field(6, ge=0, description="final blocks that also run the v-v and GEM paths")
    prompt_set: str = DEFAULT_PROMPT_SET
    classes: tuple[str, ...] | None = Field(None, description="class list; None = the dataset's")
    boxes: BoxParams = BoxParams()
    protocols: tuple[Literal["present", "open"], ...] = ("present", "open")
    iou_thresholds: tuple[float, ...] = SEED_IOUS
    interps: tuple[Literal["voc07", "voc", "coco"], ...] = ("voc07", "voc", "coco")
    sweep_percentiles: tuple[float, ...] = DEFAULT_SWEEP_PERCENTILES
    quality_percentiles: tuple[float, ...] = SEED_QUALITY_PERCENTILES
    figure_samples: int = Field(10, ge=0, description="three-column PNGs per method")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v):
        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown heatmap methods {unknown}; registered: {list(METHODS)}")
        return v

    @field_validator("prompt_set")
    @classmethod
    def _known_prompts(cls, v):
        if v not in PROMPT_SETS:
            raise ValueError(f"unknown prompt set {v!r}; known: {list(PROMPT_SETS)}")
        return v

    @classmethod
    def from_file(cls, path: str | Path) -> "RunConfig":
        return cls.model_validate_json(Path(path).read_text())

    def canonical_json(self) -> str:
        doc = self.model_dump(mode="json")
        # Fields added after runs were stored leave the hash of a configuration at their default unchanged.
        for section, name, default in _HASH_NEUTRAL_DEFAULTS:
            if doc[section].get(name) == default:
                del doc[section][name]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @property
    def run_hash(self) -> str:
        """12 hex digits over the whole configuration: the same hash means the same numbers."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


def heatmap_key(cfg: RunConfig, model_identity: dict, classes: tuple[str, ...], input_size: int) -> str:
    """16 hex digits over what determines raw grids: model content, depth, input, prompts, classes."""
    doc = {
        "version": HEATMAP_VERSION, "model": model_identity, "depth": cfg.surgery_depth,
        "input": {"size": input_size, "window": cfg.input.window, "stride": cfg.input.stride,
                  "resize": "squash, cv2 bicubic"},
        "prompts": [cfg.prompt_set, prompt_set_fingerprint(cfg.prompt_set)], "classes": list(classes),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
