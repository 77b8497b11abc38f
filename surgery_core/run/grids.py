"""The raw heatmap grids of a run, as one value (numpy only: everything that reads grids can import it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GridSet:
    """Raw grids of a run: ``grids[method]`` float32 ``[N, K, gh, gw]``, ``probs`` ``[N, K]``.

    rows: dataset image index of each row (images that failed to decode have no row).
    """

    key: str
    classes: tuple[str, ...]
    rows: np.ndarray
    grids: dict[str, np.ndarray]
    probs: np.ndarray
    skipped: list[dict] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    input_size: int = 0  # square input side in px the grids were computed at
