"""Class names: DIOR's 20 canonical spellings and the aliases other tools use for them."""

from __future__ import annotations

import re

DIOR_CLASSES: tuple[str, ...] = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "dam",
    "Expressway-Service-area", "Expressway-toll-station", "golffield", "groundtrackfield", "harbor",
    "overpass", "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)

# Text used for the prompt ensemble: the canonical names are run-together identifiers; CLIP reads words.
PROMPT_NAMES: dict[str, str] = {
    "airplane": "airplane", "airport": "airport", "baseballfield": "baseball field",
    "basketballcourt": "basketball court", "bridge": "bridge", "chimney": "chimney", "dam": "dam",
    "Expressway-Service-area": "expressway service area",
    "Expressway-toll-station": "expressway toll station", "golffield": "golf field",
    "groundtrackfield": "ground track field", "harbor": "harbor", "overpass": "overpass", "ship": "ship",
    "stadium": "stadium", "storagetank": "storage tank", "tenniscourt": "tennis court",
    "trainstation": "train station", "vehicle": "vehicle", "windmill": "windmill",
}


def normalize_key(name: str) -> str:
    """Spelling-insensitive key: lower case, no spaces, hyphens or underscores."""
    return re.sub(r"[\s\-_]+", "", name.strip().lower())


# A few spellings seen in other DIOR tools that differ by more than case and separators.
_EXTRA_ALIASES = {
    "plane": "airplane", "aeroplane": "airplane", "storage-tank": "storagetank",
    "expresswayservicearea": "Expressway-Service-area", "expresswaytollstation": "Expressway-toll-station",
    "golfcourse": "golffield", "trackfield": "groundtrackfield", "groundtrack": "groundtrackfield",
    "harbour": "harbor", "car": "vehicle", "windturbine": "windmill",
}


class ClassIndex:
    """Maps any accepted spelling of a class to its index in an ordered class list."""

    def __init__(self, classes: tuple[str, ...] | list[str]):
        self.classes: tuple[str, ...] = tuple(classes)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in {self.classes}")
        self._by_key = {normalize_key(c): i for i, c in enumerate(self.classes)}
        for alias, canonical in _EXTRA_ALIASES.items():
            i = self._by_key.get(normalize_key(canonical))
            if i is not None:
                self._by_key.setdefault(normalize_key(alias), i)

    def __len__(self) -> int:
        return len(self.classes)

    def lookup(self, name: str) -> int | None:
        """Index of ``name`` (any accepted spelling) or None when it is not in the list."""
        return self._by_key.get(normalize_key(name))

    def canonical(self, name: str) -> str | None:
        i = self.lookup(name)
        return None if i is None else self.classes[i]


def prompt_name(name: str) -> str:
    """The words used in prompts for a class: DIOR names are split into words, others kept as given."""
    canonical = ClassIndex(DIOR_CLASSES).canonical(name)
    return PROMPT_NAMES[canonical] if canonical else name.replace("_", " ").replace("-", " ")
