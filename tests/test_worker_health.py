"""A worker's health as the supervisor and clients see it: its heartbeat, and what running out of
memory outside the app's handlers gives (app.serve.heartbeat, app.serve.memory)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import pytest

from app.serve.heartbeat import Heartbeat
from app.serve.memory import MESSAGE, AnswerOutOfMemory


def test_a_heartbeat_tells_how_long_the_worker_has_been_silent() -> None:
    heartbeat = Heartbeat(multiprocessing.get_context("forkserver"))
    time.sleep(0.05)
    assert heartbeat.silent_for() >= 0.05
    heartbeat.beat()
    assert heartbeat.silent_for() < 0.05


def test_a_heartbeat_beats_from_the_event_loop() -> None:
    heartbeat = Heartbeat(multiprocessing.get_context("forkserver"))

    async def beat_briefly() -> float:
        time.sleep(0.05)  # silent, as a stuck loop would be
        before = heartbeat.silent_for()
        beating = asyncio.create_task(heartbeat.keep_beating())
        await asyncio.sleep(0)
        beating.cancel()
        return before

    silent_before = asyncio.run(beat_briefly())
    assert silent_before >= 0.05
    assert heartbeat.silent_for() < silent_before


async def run(app: Any, scope_type: str = "http") -> list[dict[str, Any]]:
    """Call `app` once through AnswerOutOfMemory; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": scope_type, "method": "POST", "path": "/api/recommendations"}
    wrapped = AnswerOutOfMemory(app, {"X-Frame-Options": "DENY"})
    await wrapped(scope, receive, send)  # type: ignore[arg-type]
    return sent


def test_out_of_memory_before_the_answer_is_a_plain_503() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise MemoryError

    start, body = asyncio.run(run(app))
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain")
    assert headers[b"x-frame-options"] == b"DENY"
    assert body["body"] == MESSAGE
    assert b"memory" in MESSAGE


def test_out_of_memory_after_the_answer_began_sends_no_second_start() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise MemoryError

    sent = asyncio.run(run(app))
    assert [m["type"] for m in sent] == ["http.response.start"]


def test_other_errors_pass_through() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("not ours")

    with pytest.raises(ValueError, match="not ours"):
        asyncio.run(run(app))
