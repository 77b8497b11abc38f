"""Evaluation protocols and box cells as records (docs/DESIGN.md sections 4 and 5).

A :class:`Protocol` says which (image, class) pairs are cut and scored and how the image-level class probability
enters a box's score; the run configuration, the stored tables and every file name it by its ``name``, and the
code asks the record instead of comparing names:

>>> protocol("open").all_classes, protocol("open").class_prob
(True, 'always')
>>> PRESENT.box_params(BoxParams()).class_prob_weight, OPEN.box_params(BoxParams()).class_prob_weight
(False, True)

A :class:`Cell` (method, protocol, cut) is the one key of a run's boxes: the box store, the cutter's results, the
sweep and the views all name a set of boxes by it. A cut is a percentile (a float) or a
:class:`~surgery_core.eval.rules.BoxRule` (:mod:`surgery_core.eval.rules`).

>>> c = Cell.of("vv_mixed", "open", 90)
>>> c.protocol is OPEN, c.cut, c.tag
(True, 90.0, 'vv_mixed/open/p90')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from surgery_core.errors import InputError
from surgery_core.eval.boxes import BoxParams
from surgery_core.eval.rules import BoxRule, Cut, as_cut, cut_label, cut_sort_key, cut_tag


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    name: how files, tables and the configuration name it. note: one line for every table that shows it.
    all_classes: which pairs it cuts and scores: every class of every image (True), or only the classes annotated
    in each image (False). class_prob: how the image-level class probability enters a box's score: ``"always"``
    (multiplied in, whatever the box parameters say) or ``"as configured"`` (``BoxParams.class_prob_weight``).
    """

    name: str
    note: str
    all_classes: bool
    class_prob: Literal["always", "as configured"]

    def __str__(self) -> str:
        return self.name

    def box_params(self, params: BoxParams) -> BoxParams:
        """``params`` as this protocol cuts with them: class-probability weighting forced on under ``always``."""
        if self.class_prob == "always" and not params.class_prob_weight:
            return params.model_copy(update={"class_prob_weight": True})
        return params

    def n_pairs(self, n_present: int, n_images: int, n_classes: int) -> int:
        """How many (image, class) maps it cuts per method, given the number of annotated pairs."""
        return n_images * n_classes if self.all_classes else n_present


PRESENT = Protocol("present", "present: boxes only for classes annotated in the image (localisation, the seed's "
                              "setting)", all_classes=False, class_prob="as configured")
OPEN = Protocol("open", "open: boxes for every class on every image, score x image-level class probability "
                        "(detection)", all_classes=True, class_prob="always")
#: Every protocol by name, in the order the configuration lists them by default.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PRESENT, OPEN)}

ProtocolLike = Union[Protocol, str]


def protocol(p: ProtocolLike) -> Protocol:
    """The record of a protocol given by record or by name (a clear error for an unknown name)."""
    if isinstance(p, Protocol):
        return p
    try:
        return PROTOCOLS[str(p)]
    except KeyError:
        raise InputError(None, f"unknown protocol {p!r}: one of {', '.join(PROTOCOLS)}") from None


@dataclass(frozen=True)
class Cell:
    """One set of boxes of a run: a method's boxes under a protocol at a cut (percentile or box rule).

    Build it with :meth:`of`, which takes a protocol's name and any number as a percentile. ``tag`` is its stable
    text (``<method>/<protocol>/<cut tag>``, the box store's folder), ``label`` its words for captions.
    """

    method: str
    protocol: Protocol
    cut: Cut

    @classmethod
    def of(cls, method: str, proto: ProtocolLike, cut) -> "Cell":
        return cls(str(method), protocol(proto), as_cut(cut))

    @property
    def tag(self) -> str:
        return f"{self.method}/{self.protocol.name}/{cut_tag(self.cut)}"

    @property
    def label(self) -> str:
        return f"{self.method}, {self.protocol.name}, {cut_label(self.cut)}"

    def sort_key(self) -> tuple:
        return (self.method, list(PROTOCOLS).index(self.protocol.name), cut_sort_key(self.cut))

    def to_json(self) -> dict:
        """The cell as JSON values, exactly (files and snapshots): the protocol by name, a percentile as a number,
        another rule as its fields.

        >>> Cell.of("gem", "open", BoxRule("fixed", 0.5)).to_json()
        {'method': 'gem', 'protocol': 'open', 'cut': {'kind': 'fixed', 'value': 0.5}}
        >>> Cell.from_json(Cell.of("gem", "present", 75).to_json()) == Cell.of("gem", "present", 75.0)
        True
        """
        cut = {"kind": self.cut.kind, "value": self.cut.value} if isinstance(self.cut, BoxRule) else self.cut
        return {"method": self.method, "protocol": self.protocol.name, "cut": cut}

    @classmethod
    def from_json(cls, doc: dict) -> "Cell":
        """The cell :meth:`to_json` wrote (an unknown protocol or rule is an :class:`~surgery_core.errors.InputError`
        or ValueError naming it)."""
        cut = doc["cut"]
        return cls.of(doc["method"], doc["protocol"], BoxRule(cut["kind"], cut.get("value", 0.0))
                      if isinstance(cut, dict) else cut)


def headline_protocol(names) -> str:
    """The protocol of a run's headline tables and figures: the seed's (``present``) when the run has it, else its
    first (by name)."""
    names = [protocol(n).name for n in names]
    return PRESENT.name if PRESENT.name in names else names[0]
