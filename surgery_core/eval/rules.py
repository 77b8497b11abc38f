"""Box rules: how each working map is thresholded before boxes are cut (docs/DESIGN.md section 4).

The seed's rule is a percentile of the map, passed as a float wherever a percentile always went (the cutter's list
of thresholds, the run's box cells, ``Run.detections`` and ``Run.ap``, the views); the other rules are a
:class:`BoxRule` in the same place: Otsu's threshold of each 0-1 map (:func:`otsu_threshold`) or a fixed value of
it. A percentile or a :class:`BoxRule` is a *cut*. :mod:`surgery_core.eval.boxes` turns cuts into thresholds
(``cut_thresholds``) and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

#: Values of the fixed-value rule swept by the Threshold sweep (0-1 map values).
DEFAULT_SWEEP_FIXED: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: The box rules: the seed's percentile of each map, Otsu's threshold of each map, a fixed value of the 0-1 map.
RULES: tuple[str, ...] = ("percentile", "otsu", "fixed")
OTSU_BINS = 256


@dataclass(frozen=True)
class BoxRule:
    """A box rule other than the percentile, in the place of a percentile (a *cut*: a float is a percentile).

    kind: "otsu" (Otsu's threshold of each working map, :func:`otsu_threshold`; no parameter, value 0) or "fixed"
    (the 0-1 working map at or above ``value``)."""

    kind: Literal["otsu", "fixed"]
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in ("otsu", "fixed"):
            raise ValueError(f"box rule must be 'otsu' or 'fixed' (a percentile is a plain number), not {self.kind!r}")
        if self.kind == "otsu" and self.value != 0.0:
            raise ValueError("Otsu's rule has no parameter (value 0)")
        if self.kind == "fixed" and not 0.0 <= float(self.value) <= 1.0:
            raise ValueError(f"a fixed threshold is a value of the 0-1 map, got {self.value}")
        object.__setattr__(self, "value", float(self.value))

    def __format__(self, spec: str) -> str:  # f"{cut:g}" anywhere a percentile was formatted: the rule's tag
        return cut_tag(self)


Cut = Union[float, BoxRule]
"""A box cut: a percentile (a float, 0-100) or a :class:`BoxRule`."""


def as_cut(c) -> Cut:
    """A cut in its canonical form: a :class:`BoxRule` as it is, anything else as a float percentile."""
    return c if isinstance(c, BoxRule) else float(c)


#: How a cut is written in each style: (percentile, Otsu, fixed value), each formatted with the cut's number.
_CUT_WORDS = {"tag": ("p{:g}", "otsu", "fixed{:g}"), "short": ("p{:g}", "Otsu", "fixed {:g}"),
              "label": ("percentile {:g}", "Otsu", "fixed value {:g}")}


def _cut_words(c: Cut, style: str) -> str:
    c = as_cut(c)
    percentile, otsu, fixed = _CUT_WORDS[style]
    if isinstance(c, BoxRule):
        return otsu if c.kind == "otsu" else fixed.format(c.value)
    return percentile.format(c)


def cut_tag(c: Cut) -> str:
    """Short stable text of a cut (folder names, labels): ``p90``, ``otsu``, ``fixed0.5``."""
    return _cut_words(c, "tag")


def cut_short(c: Cut) -> str:
    """A cut in a few characters for labels: ``p90``, ``Otsu``, ``fixed 0.5``."""
    return _cut_words(c, "short")


def cut_label(c: Cut) -> str:
    """A cut in words for captions: ``percentile 90``, ``Otsu``, ``fixed value 0.5``."""
    return _cut_words(c, "label")


def cut_from_label(text: str) -> Cut:
    """The cut a :func:`cut_label` text names (``percentile 90``, ``Otsu``, ``fixed value 0.5``): how older files
    that stored a cut in words are read back. ValueError for any other text.

    >>> cut_from_label("percentile 75"), cut_from_label("Otsu"), cut_from_label("fixed value 0.5")
    (75.0, BoxRule(kind='otsu', value=0.0), BoxRule(kind='fixed', value=0.5))
    """
    percentile, otsu, fixed = _CUT_WORDS["label"]
    text = str(text).strip()
    if text == otsu:
        return BoxRule("otsu")
    for words, make in ((percentile, float), (fixed, lambda v: BoxRule("fixed", float(v)))):
        head = words.split("{")[0]
        if text.startswith(head):
            try:
                return make(text[len(head):])
            except ValueError:
                break
    raise ValueError(f"not a box rule: {text!r} (percentile P, Otsu, or fixed value V)")


def cut_sort_key(c: Cut) -> tuple:
    """Percentiles first (ascending), then Otsu, then fixed values (ascending)."""
    c = as_cut(c)
    return (0, c) if not isinstance(c, BoxRule) else ((1, 0.0) if c.kind == "otsu" else (2, c.value))


def otsu_threshold(wmap: np.ndarray) -> np.float32:
    """Otsu's threshold of a 0-1 working map, as a threshold of ``map >= t``.

    The map's values are binned into :data:`OTSU_BINS` equal bins over [0, 1] (bin ``i`` is ``[i/256, (i+1)/256)``,
    the last one closed, as ``np.histogram(map, 256, (0, 1))``); Otsu's split maximises the between-class variance
    ``w0 w1 (mu0 - mu1)^2`` over the splits after bin ``k`` (bin centres as values; the first maximum on ties, as
    OpenCV's THRESH_OTSU on the binned map), and the threshold is the upper edge ``(k + 1) / 256`` of the last
    background bin: exactly the pixels of bins ``k + 1 ...`` are foreground. A constant map (one filled bin) gives
    ``k = 0``: no pixel of an all-zero map is foreground.
    """
    flat = np.asarray(wmap, dtype=np.float32).ravel().astype(np.float64)
    if flat.size == 0:
        raise ValueError("cannot take Otsu's threshold of an empty map")
    idx = np.clip(np.floor(flat * OTSU_BINS), 0, OTSU_BINS - 1).astype(np.int64)  # x * 256 is exact in float64
    hist = np.bincount(idx, minlength=OTSU_BINS).astype(np.float64)
    centres = (np.arange(OTSU_BINS) + 0.5) / OTSU_BINS
    w0 = np.cumsum(hist)[:-1]
    w1 = hist.sum() - w0
    m0 = np.cumsum(hist * centres)[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = w0 * w1 * (m0 / w0 - (np.dot(hist, centres) - m0) / w1) ** 2
    between[(w0 == 0) | (w1 == 0)] = 0.0
    k = int(np.argmax(between))
    return np.float32((k + 1) / OTSU_BINS)
