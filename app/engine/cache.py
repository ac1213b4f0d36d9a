"""The answer cache: a thread-safe least-recently-used cache, bounded in entries and in bytes.

Both bounds matter: answers for visitors carry their ratings in the key, so a few thousand
of them can take hundreds of megabytes while the entry count looks harmless. An answer is
kept with the HTML presented from it, and that HTML compressed, once they have been asked
for. An entry's weight is what it keeps alive, measured when it is stored (`entry_bytes`),
and raised by what is added to it later; it holds plain Python
values only, nothing of the model, so an old model's entries keep no snapshot mapped.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.engine.answers import Recommendations

Present = Callable[[Recommendations], str]
"""Makes the HTML of an answer (the web layer's fragment); run in the answer's worker thread."""
Encode = Callable[[bytes, str, bool], bytes]
"""Compresses bytes in a content coding ("br", "gzip"), harder when the third argument says
the result is kept for later requests; run in the answer's worker thread."""

V = TypeVar("V")

NO_BYTE_LIMIT = sys.maxsize

ENTRY_OVERHEAD = 200
"""What the cache's own bookkeeping adds per entry: the OrderedDict's slot and link, the
(value, weight) pair and the weight, measured with tracemalloc."""
_CACHED_INTS = range(-5, 257)
"""Integers CPython keeps for the life of the process: an entry keeps none of them alive."""


def deep_size(*objects: object) -> int:
    """Bytes held by `objects` and everything they reach, each object counted once.

    Walks tuples, lists, sets, dicts and the attributes of objects (`__dict__` and
    `__slots__`), not types or functions. `sys.getsizeof` counts a string at its width: one
    character outside Latin-1 (a star, an arrow) makes the whole string 2 or 4 bytes a
    character, which `len()` misses. Objects shared with others (a title the catalogue also
    keeps) are counted: the entry would keep them alive if the others let go.
    """
    seen: set[int] = set()
    total = 0
    waiting: list[object] = list(objects)
    while waiting:
        item = waiting.pop()
        if id(item) in seen or item is None or isinstance(item, (bool, type)) or callable(item):
            continue
        seen.add(id(item))
        if isinstance(item, int) and item in _CACHED_INTS:
            continue
        total += sys.getsizeof(item)
        if isinstance(item, (str, bytes, int, float)):
            continue
        if isinstance(item, (tuple, list, set, frozenset)):
            waiting.extend(item)
        elif isinstance(item, dict):
            waiting.extend(item.keys())
            waiting.extend(item.values())
        else:
            attributes = getattr(item, "__dict__", None)
            if attributes is not None:
                # Its names are the class's, shared by every instance: only the values count.
                seen.add(id(attributes))
                total += sys.getsizeof(attributes)
                waiting.extend(attributes.values())
            for kind in type(item).__mro__:
                waiting.extend(
                    getattr(item, slot)
                    for slot in getattr(kind, "__slots__", ())
                    if hasattr(item, slot)
                )
    return total


def entry_bytes(key: Hashable, kept: object) -> int:
    """The bytes a cache entry keeps alive: its key, its value and the cache's bookkeeping."""
    return ENTRY_OVERHEAD + deep_size(key, kept)


@dataclass(frozen=True)
class Kept:
    """An answer in the cache, with the HTML presented from it once that was asked for.

    `encoded` holds that HTML compressed, (coding, bytes) for each coding asked so far, so
    that a cached answer costs no compression; `weight` is the entry's measured size (0
    while the cache keeps nothing), which each added coding raises by its own size.
    """

    value: Recommendations
    html: str | None = None
    encoded: tuple[tuple[str, bytes], ...] = ()
    weight: int = 0

    def body(self, coding: str) -> bytes | None:
        """The HTML in content coding `coding`, if it was made."""
        for name, body in self.encoded:
            if name == coding:
                return body
        return None


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

    @property
    def keeps(self) -> bool:
        """False when the cache is off (size 0): nothing put is kept, so nothing need be weighed."""
        return self.size > 0

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


def complete(
    key: Hashable,
    kept: Kept | None,
    compute: Callable[[], Recommendations],
    present: Present | None,
    encode: Encode | None,
    coding: str | None,
    keeps: bool,
) -> Kept:
    """`kept` with what is missing of the answer, its HTML and its `coding` (blocking).

    `keeps`: the cache will keep the result, so it is compressed harder and weighed.
    """
    value = kept.value if kept is not None else compute()
    html = kept.html if kept is not None and kept.html is not None else None
    encoded = kept.encoded if kept is not None and html is not None else ()
    added: list[object] = []
    if html is None and present is not None:
        html = present(value)
        added.append(html)
    if encode is not None and coding is not None and html is not None:
        body = encode(html.encode(), coding, keeps)
        encoded = (*encoded, (coding, body))
        added.append(body)
    made = Kept(value, html, encoded)
    if not keeps:
        return made
    # Weighed here, off the loop: the walk over the answer takes a fraction of a ms
    # (0.2 for 5 films, 1.4 for 50), so only when the cache will keep it, and once.
    if kept is not None and kept.weight:
        weight = kept.weight + sum(sys.getsizeof(part) for part in added)
    else:
        weight = entry_bytes(key, made)
    return Kept(value, html, encoded, weight)
