"""The demo classes, one record each: what the scenes call it, how captions word it, where and how it is drawn.

The order of :data:`CLASS_RECORDS` is DIOR's class order restricted to these classes; scenes draw their
random class choice from it, so reordering the records changes every scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from surgery_core.demo.scenes.builder import _Builder
from surgery_core.demo.scenes.objects import (
    _place_airplanes,
    _place_chimneys,
    _place_courts,
    _place_gtf,
    _place_ships,
    _place_tanks,
    _place_vehicles,
    _place_windmills,
)


@dataclass(frozen=True)
class DemoClass:
    """Everything the generator knows about one demo class.

    name: DIOR's exact spelling. words / plural: how captions (and the model's prompts) name one / several.
    adjectives: caption adjectives, each with its trailing space, one drawn for about 20% of mentions.
    backgrounds: background kinds a scene with this class usually gets, repeated to weight the draw.
    placer: draws a random number of these objects into the scene under construction.
    order: rank in which a scene places its classes, ascending: the classes that need the most free room
    (track fields, airplanes) go first, vehicles, which fill what is left of roads and lots, last.
    """

    name: str
    words: str
    plural: str
    adjectives: tuple[str, ...]
    backgrounds: tuple[str, ...]
    placer: Callable[[_Builder], None]
    order: int


CLASS_RECORDS: tuple[DemoClass, ...] = (
    DemoClass("airplane", "airplane", "airplanes", ("white ", "parked ", "large "),
              ("apron", "apron", "apron", "grass", "soil"), _place_airplanes, 1),
    DemoClass("storagetank", "storage tank", "storage tanks", ("white ", "round ", "oil "),
              ("industrial", "industrial", "soil", "grass"), _place_tanks, 3),
    DemoClass("tenniscourt", "tennis court", "tennis courts", ("outdoor ",),
              ("grass", "urban", "grass"), _place_courts, 2),
    DemoClass("ship", "ship", "ships", ("large ", "small "),
              ("grass", "soil", "urban", "industrial"), _place_ships, 6),
    DemoClass("vehicle", "vehicle", "vehicles", ("small ",),
              ("urban", "industrial", "apron", "grass", "soil"), _place_vehicles, 7),
    DemoClass("groundtrackfield", "ground track field", "ground track fields", ("large ",),
              ("grass", "urban", "soil"), _place_gtf, 0),
    DemoClass("windmill", "windmill", "windmills", ("white ", "tall "),
              ("fields", "fields", "grass", "soil"), _place_windmills, 4),
    DemoClass("chimney", "chimney", "chimneys", ("tall ",),
              ("industrial", "urban", "soil"), _place_chimneys, 5),
)

#: The record of each class, by name.
CLASS_BY_NAME: dict[str, DemoClass] = {c.name: c for c in CLASS_RECORDS}

#: The records in the order a scene places them (see :attr:`DemoClass.order`).
PLACING_ORDER: tuple[DemoClass, ...] = tuple(sorted(CLASS_RECORDS, key=lambda c: c.order))

#: The DIOR classes the generator draws, in DIOR's exact spelling.
DEMO_CLASSES: tuple[str, ...] = tuple(c.name for c in CLASS_RECORDS)

#: The words captions use for each class (the same words the model is prompted with), singular form.
CLASS_WORDS: dict[str, str] = {c.name: c.words for c in CLASS_RECORDS}
