"""Captions of the demo scenes: one English sentence that names every drawn class with its count.

The words per class come from the class records (:mod:`.classes`); everything random comes from the scene's
rng, drawn in a fixed order, so a caption is a function of the rng state and the scene's contents.
"""

from __future__ import annotations

import numpy as np

from surgery_core.demo.scenes.classes import CLASS_BY_NAME

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve"]
_PREFIXES = ["an aerial image of", "aerial view of", "a satellite image of", "satellite view of",
             "a remote sensing image of", "an overhead view of", "a top-down photo of",
             "a high-resolution satellite image showing", "an aerial photograph showing",
             "a remote sensing scene with", "an image taken from above showing", "overhead imagery of"]
_CONTEXT = {
    "grass": [" on grass", " in a park", " surrounded by grass", " among trees and lawns"],
    "fields": [" among farmland", " in the countryside", " between crop fields"],
    "soil": [" on bare ground", " in a dry area", " on bare soil"],
    "urban": [" in a city", " in an urban area", " among roads and buildings"],
    "industrial": [" in an industrial area", " at an industrial site"],
    "apron": [" on concrete", " on a concrete apron"],
    "sea": [" at sea", " on open water"],
    "shore": [" near the shore", " along the coast", " by the water"],
    "river": [" on a river", " by a river"],
}


def _phrase(rng: np.random.Generator, cls: str, n: int, tags: set) -> str:
    record = CLASS_BY_NAME[cls]
    word, plural, adjectives = record.words, record.plural, record.adjectives
    adj = adjectives[rng.integers(len(adjectives))] if rng.random() < 0.2 else ""
    if cls == "vehicle" and "lot" in tags and rng.random() < 0.4:
        adj = "parked "
    if n == 1:
        r = rng.random()
        art = "one " if r < 0.12 else "a single " if r < 0.18 else ("an " if (adj or word)[0] in "aeiou" else "a ")
        text = art + adj + word
    else:
        r = rng.random()
        if n <= 12 and r < 0.6:
            q = _NUMBERS[n]
        elif n == 2:
            q = "a pair of" if r < 0.8 else "two"
        else:
            opts = ["several", "a group of"] + (["many"] if n >= 6 else ["a few"] if n <= 4 else [])
            if "row" in tags:
                opts.append("a row of")
            if cls == "storagetank" and "cluster" in tags:
                opts.append("a cluster of")
            q = opts[rng.integers(len(opts))]
        text = f"{q} {adj}{plural}"
    if rng.random() < 0.5:
        if cls == "vehicle" and "lot" in tags:
            text += " in a parking lot"
        elif cls == "vehicle" and "road" in tags:
            text += " on a road"
        elif cls == "chimney" and "smoke" in tags:
            text += " with smoke" if n == 1 else " releasing smoke"
        elif cls == "ship" and "wake" in tags:
            text += " leaving a wake" if n == 1 else " leaving wakes"
    return text


def _caption(rng: np.random.Generator, counts: dict[str, int], tags: dict[str, set], context: str) -> str:
    classes = list(counts)
    order = rng.permutation(len(classes))
    items = [_phrase(rng, classes[i], counts[classes[i]], tags.get(classes[i], set())) for i in order]
    if len(items) == 1:
        listing = items[0]
    elif len(items) == 2:
        listing = items[0] + [" and ", " near ", " next to ", " beside ", " with "][rng.integers(5)] + items[1]
    else:
        listing = ", ".join(items[:-1]) + " and " + items[-1]
    ctx = ""
    if rng.random() < 0.4:
        opts = _CONTEXT[context]
        ctx = opts[rng.integers(len(opts))]
    r = rng.random()
    if r < 0.7:
        text = f"{_PREFIXES[rng.integers(len(_PREFIXES))]} {listing}{ctx}"
    elif r < 0.82:
        text = f"{listing}{ctx}, seen from above"
    elif r < 0.92:
        text = f"{listing}{ctx} in a satellite image"
    else:
        text = f"this aerial image shows {listing}{ctx}"
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + ("." if rng.random() < 0.5 else "")
