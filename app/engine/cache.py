"""The answer cache: a thread-safe least-recently-used cache, bounded in entries and in bytes.

Both bounds matter: answers for visitors carry their ratings in the key, so a few thousand
of them can take hundreds of megabytes while the entry count looks harmless. An answer is
kept with the HTML presented from it, once that has been asked for.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.engine.answers import Recommendations

V = TypeVar("V")

NO_BYTE_LIMIT = sys.maxsize

# What one cache entry takes, measured once with a recursive sys.getsizeof over the objects:
# a fixed part, each film of the answer, each reason, each rating in a visitor's key, and
# the HTML's characters.
ENTRY_BYTES = 2_000
FILM_BYTES = 700
REASON_BYTES = 400
RATING_BYTES = 80


def entry_bytes(answer: Recommendations, html: str | None, ratings: int = 0) -> int:
    """About how many bytes a cached answer takes with its key."""
    reasons = sum(len(movie.reasons) for movie in answer.movies)
    return (
        ENTRY_BYTES
        + FILM_BYTES * len(answer.movies)
        + REASON_BYTES * reasons
        + RATING_BYTES * ratings
        + len(html or "")
    )


@dataclass(frozen=True)
class Kept:
    """An answer in the cache, with the HTML presented from it once that was asked for."""

    value: Recommendations
    html: str | None = None


@dataclass(frozen=True)
class CacheInfo:
    """How the answer cache is doing: entries and bytes held (and allowed), hits and misses."""

    entries: int
    capacity: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int


class LRUCache(Generic[V]):
    """Keeps the `size` most recently used values, within `max_bytes`; size 0 keeps nothing."""

    def __init__(self, size: int, max_bytes: int = NO_BYTE_LIMIT) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for `key`, marked as just used, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, weight: int = 0) -> None:
        """Store `value`, which takes about `weight` bytes with its key.

        The least recently used go beyond `size` entries or `max_bytes`.
        """
        if self.size <= 0 or weight > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, weight)
            self.bytes += weight
            while len(self._items) > self.size or self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)

    def info(self) -> CacheInfo:
        """Entries and bytes held (and allowed), hits and misses."""
        return CacheInfo(len(self), self.size, self.bytes, self.max_bytes, self.hits, self.misses)
