"""Answers computed off the event loop, once per question while the model stays the same.

A call looks in the answer cache on the event loop and otherwise moves off it once: the
computation and, when asked, the HTML made from its result (by the `present` function given
at creation) and that HTML compressed (by its `encode`) run together in one worker thread,
and all of them are cached. At most COMPUTE_THREADS such hops run at a time; the rest wait
here without a thread (NumPy and SciPy hold the GIL between array operations, so more
threads than cores only take turns and starve the event loop).

An answer its caller knows to be cheap (a list the build already ranked, read and dressed
in about a millisecond) is made on the loop instead: the hop costs more than such an answer.
A thread working beside a busy loop hands the GIL back and forth at every socket call and
every NumPy operation that releases it: 25 context switches per answer, which made an
uncached fragment cost 3.0 ms of CPU against 1.9 ms on the loop (3,550 against 5,300 answers
in 10 s; wrk, 64 connections, one worker, ml-latest-small). Cheap answers take the same
compute slots, one after another: made as they came, 64 at a time, they held the loop for a
whole round and /healthz waited 1.4 s at the 99th percentile; in turn, 57 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app import metrics
from app.config import Settings
from app.engine.answers import Recommendations
from app.engine.cache import CacheInfo, Encode, Kept, LRUCache, Present, complete, entry_bytes

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Reply(Generic[T]):
    """What a call answered, and the HTML presented from it when that was asked for.

    `body` is that HTML in the content coding asked for, when one was and there is an
    `encode`.
    """

    value: T
    html: str | None = None
    body: bytes | None = None


class Answering:
    """The answer cache and the compute slots that fill it."""

    def __init__(
        self, settings: Settings, present: Present | None = None, encode: Encode | None = None
    ) -> None:
        self._present = present
        self._encode = encode
        self._answers: LRUCache[Kept] = LRUCache(settings.result_cache, settings.result_cache_bytes)
        self._slots = asyncio.Semaphore(settings.compute_threads)

    def info(self) -> CacheInfo:
        """How full the answer cache is."""
        return self._answers.info()

    async def off_loop(self, func: Callable[..., R], *args: Any) -> R:
        """`func(*args)` in a worker thread once a compute slot is free."""
        async with self._slots:
            return await asyncio.to_thread(func, *args)

    async def cached(
        self,
        key: Hashable,
        compute: Callable[[], Recommendations],
        presented: bool,
        coding: str | None = None,
        cheap: Callable[[], bool] | None = None,
    ) -> Reply[Recommendations]:
        """The answer (its HTML, compressed) from the cache, else what is missing, in one hop
        (or on the loop in a compute slot, when `cheap()` says it costs less than the hop)."""
        kept = self._answers.get(key)
        metrics.answer_cache(kept is not None)
        present = self._present if presented else None
        encode = self._encode if present is not None and coding is not None else None
        if kept is not None and (present is None or kept.html is not None):
            body = kept.body(coding) if encode is not None and coding is not None else None
            if encode is None or body is not None:
                return Reply(kept.value, kept.html if present else None, body)

        def work() -> Kept:
            return complete(key, kept, compute, present, encode, coding, self._answers.keeps)

        if cheap is not None and cheap():
            # In turn with the others: between two answers the loop serves everything else.
            async with self._slots:
                made = work()
        else:
            made = await self.off_loop(work)
        self._answers.put(key, made, made.weight)
        body = made.body(coding) if encode is not None and coding is not None else None
        return Reply(made.value, made.html if present else None, body)

    def kept_or_made(
        self, key: Hashable, compute: Callable[[], Recommendations]
    ) -> Recommendations:
        """The cached answer, else `compute()` cached (blocking: call in a worker thread)."""
        kept = self._answers.get(key)
        metrics.answer_cache(kept is not None)
        if kept is None:
            kept = Kept(compute())
            if self._answers.keeps:
                self._answers.put(key, kept, entry_bytes(key, kept))
        return kept.value
