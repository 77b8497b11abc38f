"""One value type for boxes, shared by ground truth, predictions, drawing, scoring and reports.

Coordinates are pixels of the original image, continuous, ``xyxy`` (x_min, y_min, x_max, y_max), no +1
convention: a box from x=10 to x=20 is 10 px wide. Ground truth has ``score`` 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detections:
    """N boxes over a set of images.

    xyxy: float64 [N, 4] pixels. score: float64 [N]. class_id: int64 [N], index into the run's class list.
    image: int64 [N], index into the dataset's image list. extra: optional per-box arrays of length N
    (e.g. ``iou`` or ``tp`` after matching).

    >>> det = Detections([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]], score=[0.9, 0.8, 0.7],
    ...                  class_id=[0, 0, 0], image=[0, 1, 1])
    >>> len(det), det.area.tolist()
    (3, [100.0, 100.0, 50.0])
    >>> det[det.score > 0.75].image.tolist()  # a numpy mask selects boxes
    [0, 1]
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    image: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        for name, dtype in (("score", np.float64), ("class_id", np.int64), ("image", np.int64)):
            arr = np.asarray(getattr(self, name), dtype=dtype).reshape(-1)
            if len(arr) != n:
                raise ValueError(f"Detections.{name} has {len(arr)} entries, xyxy has {n}")
            object.__setattr__(self, name, arr)
        for k, v in self.extra.items():
            if len(v) != n:
                raise ValueError(f"Detections.extra[{k!r}] has {len(v)} entries, xyxy has {n}")

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: list["Detections"]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        keys = set.intersection(*(set(p.extra) for p in parts))
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.image for p in parts]),
            {k: np.concatenate([p.extra[k] for p in parts]) for k in keys},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, mask) -> "Detections":
        """Boolean-mask or index-array selection, like numpy."""
        return Detections(self.xyxy[mask], self.score[mask], self.class_id[mask], self.image[mask],
                          {k: v[mask] for k, v in self.extra.items()})

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def with_extra(self, **arrays: np.ndarray) -> "Detections":
        return Detections(self.xyxy, self.score, self.class_id, self.image, {**self.extra, **arrays})
