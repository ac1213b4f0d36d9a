"""Run the engine's blocking calls off the event loop, a bounded number at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from quart import current_app
from quart.utils import run_sync

P = ParamSpec("P")
R = TypeVar("R")


async def off_loop(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Await `func(*args)` in a worker thread once one of the compute slots is free.

    The computations are NumPy and SciPy calls that hold the GIL between array operations;
    more threads than cores only make them take turns at the GIL and starve the event loop,
    so requests beyond the slots wait here, without a thread.
    """
    slots: asyncio.Semaphore = current_app.extensions["compute_slots"]
    async with slots:
        return await run_sync(func)(*args, **kwargs)
