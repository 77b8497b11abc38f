"""A bounded, thread-safe mapping that keeps its most recently used entries: the in-memory caches' one eviction
rule (a loaded model's text features, :class:`surgery_core.model.text_cache.TextMemory`; Explore's image sides,
:class:`surgery_core.run.explore.TokenCache`; the last box cells a run read,
:class:`surgery_core.run.boxcells.RunBoxes`).

>>> c = LRU(2)
>>> c.put("a", 1); c.put("b", 2); _ = c.get("a"); c.put("c", 3)
>>> sorted(c.keys()), c.total
(['a', 'c'], 2)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``bound`` in total (the sum of ``size(value)`` over the entries; ``size`` defaults to 1, a count):
    beyond it the least recently used entries go, but never the last one left. :meth:`get` and :meth:`put` make an
    entry the most recently used."""

    def __init__(self, bound: int, size: Callable[[V], int] = lambda v: 1):
        self.bound = int(bound)
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def total(self) -> int:
        """The sum of ``size`` over the entries."""
        with self._lock:
            return sum(self.size(v) for v in self._entries.values())

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return default
            self._entries.move_to_end(key)
            return hit

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The entry, without making it the most recently used."""
        with self._lock:
            return self._entries.get(key, default)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            total = sum(self.size(v) for v in self._entries.values())
            while total > self.bound and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                total -= self.size(old)
