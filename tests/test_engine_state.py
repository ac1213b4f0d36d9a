"""The serving state: every change is published once and wakes whoever waits for it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.engine.state import ServingState
from app.engine.status import State, Status


async def test_a_waiter_is_woken_by_the_publish_it_waits_for() -> None:
    state = ServingState()
    state.publish(Status(State.LOADING, "loading ratings"))
    waiting = asyncio.create_task(
        state.wait_until(lambda: state.status.state is State.FAILED, timeout=60)
    )
    await asyncio.sleep(0)
    state.publish(Status(State.LOADING, "building the rating matrix"))  # not yet
    await asyncio.sleep(0)
    assert not waiting.done()
    started = time.monotonic()
    state.publish(Status(State.FAILED, "failed", error="no data"))
    await asyncio.wait_for(waiting, 5)
    # Woken by the publish, long before the minute's timeout.
    assert time.monotonic() - started < 1
    assert state.settled() and not state.ready


async def test_a_publish_from_a_worker_thread_wakes_the_loop() -> None:
    state = ServingState()
    state.publish(Status(State.LOADING, "starting"))
    waiting = asyncio.create_task(
        state.wait_until(lambda: state.status.phase == "loading ratings", timeout=60)
    )
    await asyncio.sleep(0)
    progress = Status(State.LOADING, "loading ratings")
    worker = threading.Thread(target=state.publish, args=(progress,))
    worker.start()
    await asyncio.wait_for(waiting, 5)
    worker.join()


async def test_waiting_in_vain_ends_with_what_is_still_missing() -> None:
    state = ServingState()
    with pytest.raises(TimeoutError, match="still starting"):
        await state.wait_until(lambda: state.ready, timeout=0.05)
