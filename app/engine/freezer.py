"""Exempting what lives from garbage collection, without freezing the model a swap replaced.

`gc.freeze()` moves every object alive into a generation the collector never walks: the
modules, the model, the templates. Left in the oldest generation, each full collection walks
all of them while requests wait: with 64 connections on ml-latest-small the fragment's p99
fell from 100-155 ms to 51-56 ms once they were frozen.

But a frozen object is never collected by the cyclic collector, only freed when its count of
references falls to zero. Freezing at the moment of a swap freezes the model being replaced
too (the swap and the requests still running hold it); any part of it that sits in a
reference cycle then stays, with the snapshot file it maps, until the next unfreeze. Before
issue 24 this kept every old snapshot mapped (/proc/PID/maps: "(deleted)", 6 of 6 after six
rebuilds under load). So after a swap nothing is frozen until the replaced model is gone;
then one full collection frees whatever of it sat in a cycle, and only then is the rest
frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import weakref

log = logging.getLogger(__name__)

RELEASE_POLL_SECONDS = 0.05
"""How often the freezer looks whether the replaced model is gone."""
COLLECT_SECONDS = 1.0
"""While it waits, how often it runs a full collection."""
RELEASE_SECONDS = 60.0
"""How long the freezer waits for it (the longest request) before freezing all the same."""


class Freezer:
    """Freezes what lives after each swap, once the model it replaced is released."""

    def __init__(self) -> None:
        self._waiting: asyncio.Task[None] | None = None

    def swapped(self, replaced: object | None) -> None:
        """A new model serves instead of `replaced` (None at the first): freeze when it is gone.

        Unfreezes at once, so that the cyclic collector can reach what the swap made garbage.
        """
        self.cancel()
        gc.unfreeze()
        if replaced is None:
            _collect_and_freeze()
            return
        gone = weakref.ref(replaced)
        del replaced
        self._waiting = asyncio.get_running_loop().create_task(
            self._freeze_once_released(gone), name="engine-freeze"
        )

    async def stop(self) -> None:
        """Stop waiting (on shutdown)."""
        waiting = self.cancel()
        if waiting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await waiting

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop waiting for the previous swap's model (a newer swap waits for its own)."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.cancel()
        return waiting

    async def _freeze_once_released(self, gone: weakref.ref[object]) -> None:
        began = time.monotonic()
        collected = began
        while gone() is not None:
            now = time.monotonic()
            if now - collected >= COLLECT_SECONDS:
                # The model may itself sit in a cycle, which only a collection frees.
                gc.collect()
                collected = now
                continue
            if now - began > RELEASE_SECONDS:
                log.warning(
                    "The model replaced %.0fs ago is still referenced; freezing anyway, so "
                    "its snapshot stays mapped until the next switch",
                    RELEASE_SECONDS,
                )
                break
            await asyncio.sleep(RELEASE_POLL_SECONDS)
        _collect_and_freeze()


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()
