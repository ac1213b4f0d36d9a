"""A worker's heartbeat: the time its event loop last ran, in memory the supervisor reads.

A worker whose process is stopped, or whose loop is stuck in a call that never returns, still
exists, so the supervisor's wait for exits never notices it; its heartbeat stops instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from multiprocessing.context import BaseContext
from typing import Any

# Seconds between beats; WORKER_TIMEOUT is several of them.
INTERVAL = 1.0


class Heartbeat:
    """When a worker's event loop last ran: written by the worker, read by the supervisor.

    CLOCK_MONOTONIC is one clock for every process of the machine, so both sides compare it.
    Pass it to the worker process as an argument (shared memory is inherited, not sent).
    """

    def __init__(self, context: BaseContext) -> None:
        self._beat: Any = context.RawValue(ctypes.c_double, time.monotonic())

    def beat(self) -> None:
        """Record that the worker is alive now (also resets it for a new worker)."""
        self._beat.value = time.monotonic()

    def silent_for(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - float(self._beat.value)

    async def keep_beating(self) -> None:
        """Beat every INTERVAL seconds from the running event loop, until cancelled."""
        while True:
            self.beat()
            await asyncio.sleep(INTERVAL)
