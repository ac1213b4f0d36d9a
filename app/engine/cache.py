"""A small thread-safe least-recently-used cache, bounded in entries and in bytes.

Both bounds matter: answers for visitors carry their ratings in the key, so a few thousand
of them can take hundreds of megabytes while the entry count looks harmless.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

NO_BYTE_LIMIT = sys.maxsize


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
