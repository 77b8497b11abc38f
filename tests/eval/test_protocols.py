"""Protocols and cells as records (issue 22 item 2): what each protocol cuts and how the class probability enters,
the cell as the one key of a run's boxes, and the on-disk names they keep."""

from __future__ import annotations

import numpy as np
import pytest

from surgery_core.errors import InputError
from surgery_core.eval.boxes import BoxParams, BoxRule
from surgery_core.eval.protocols import OPEN, PRESENT, PROTOCOLS, Cell, headline_protocol, protocol
from surgery_core.run.config import RunConfig


def test_the_records_say_what_the_names_meant():
    assert list(PROTOCOLS) == list(RunConfig.model_fields["protocols"].default)  # the configuration's names
    assert protocol("present") is PRESENT and protocol(OPEN) is OPEN and str(OPEN) == "open"
    assert (PRESENT.all_classes, OPEN.all_classes) == (False, True)
    # open multiplies by the class probability whatever the parameters say; present follows them
    for weighted in (False, True):
        params = BoxParams(class_prob_weight=weighted, morph_kernel=5)
        assert OPEN.box_params(params).class_prob_weight is True
        assert PRESENT.box_params(params) == params
        assert OPEN.box_params(params).model_copy(update={"class_prob_weight": weighted}) == params
    assert (PRESENT.n_pairs(7, 3, 20), OPEN.n_pairs(7, 3, 20)) == (7, 60)
    with pytest.raises(InputError, match="unknown protocol 'closed': one of present, open"):
        protocol("closed")


def test_a_cell_is_one_hashable_key_with_the_stores_folder_names():
    a = Cell.of("gem", "open", np.float64(90))
    assert a == Cell("gem", OPEN, 90.0) and hash(a) == hash(Cell.of("gem", OPEN, 90))
    assert type(a.cut) is float  # numpy numbers become the one canonical float
    # the folder names of the box store written before the records (<method>/<protocol>/<cut tag>)
    assert a.tag == "gem/open/p90"
    assert Cell.of("gem", "present", BoxRule("otsu")).tag == "gem/present/otsu"
    assert Cell.of("gem", "present", BoxRule("fixed", 0.5)).tag == "gem/present/fixed0.5"
    assert Cell.of("gem", "present", 75).label == "gem, present, percentile 75"
    cells = [Cell.of("b", "open", 50), Cell.of("a", "open", BoxRule("otsu")), Cell.of("a", "present", 90),
             Cell.of("a", "open", 50)]
    assert [c.tag for c in sorted(cells, key=Cell.sort_key)] == ["a/present/p90", "a/open/p50", "a/open/otsu",
                                                                 "b/open/p50"]
    with pytest.raises(InputError):
        Cell.of("gem", "everything", 90)


def test_headline_protocol_prefers_the_seeds():
    assert headline_protocol(("open", "present")) == "present"
    assert headline_protocol(("open",)) == "open"
