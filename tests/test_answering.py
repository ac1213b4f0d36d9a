"""Where an answer is made: in a worker thread, or on the event loop when it is cheap.

A list the build already ranked costs less to dress than a hop to a thread costs beside a
busy loop (app/engine/answering.py); everything else is computed off the loop.
"""

from __future__ import annotations

import asyncio
import threading

from app.config import Settings
from app.engine.answering import Answering
from app.engine.answers import Recommendations

EMPTY = Recommendations(1, 3, 5, "ease", "EASE", "scored", "weight", (), ())


async def made_in(settings: Settings, cheap: bool | None) -> tuple[str, str]:
    """The threads that computed and presented one uncached answer."""
    threads: dict[str, str] = {}

    def compute() -> Recommendations:
        threads["computed"] = threading.current_thread().name
        return EMPTY

    def present(_: Recommendations) -> str:
        threads["presented"] = threading.current_thread().name
        return "<p>html</p>"

    answering = Answering(settings, present=present)
    check = None if cheap is None else (lambda: cheap)
    reply = await answering.cached("key", compute, True, None, check)
    assert reply.value is EMPTY and reply.html == "<p>html</p>"
    return threads["computed"], threads["presented"]


async def test_a_cheap_answer_is_made_on_the_loop_and_any_other_in_a_thread(
    settings: Settings,
) -> None:
    loop_thread = threading.current_thread().name
    assert await made_in(settings, cheap=True) == (loop_thread, loop_thread)
    for cheap in (False, None):
        computed, presented = await made_in(settings, cheap)
        assert computed == presented != loop_thread


async def test_cheap_answers_wait_their_turn_for_a_compute_slot(settings: Settings) -> None:
    # One slot (COMPUTE_THREADS=1): a cheap answer is not made while another one is.
    answering = Answering(settings.replace(compute_threads=1))
    started, finish = threading.Event(), threading.Event()
    made: list[str] = []

    def slow() -> None:
        started.set()
        finish.wait(10)

    def compute() -> Recommendations:
        made.append("cheap")
        return EMPTY

    busy = asyncio.create_task(answering.off_loop(slow))
    assert await asyncio.to_thread(started.wait, 10)
    cheap = asyncio.create_task(answering.cached("key", compute, False, None, lambda: True))
    for _ in range(20):
        await asyncio.sleep(0)
    assert made == [] and not cheap.done()
    finish.set()
    await busy
    assert (await cheap).value is EMPTY and made == ["cheap"]
