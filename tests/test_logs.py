"""The log limiter: a line repeated in a burst is shown a few times, then counted."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from app import logs
from app.logs import RepeatLimiter


def record(message: str, name: str = "asyncio") -> logging.LogRecord:
    """A log record of `message` from the logger `name`."""
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (), None)


def test_a_repeated_line_is_logged_a_few_times_then_counted() -> None:
    limiter = RepeatLimiter(shown=3, window=60)
    assert sum(limiter.filter(record("accept failed")) for _ in range(100)) == 3
    assert limiter.filter(record("something else", name="app"))


def test_the_next_window_shows_the_line_again_with_the_count_suppressed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimpleNamespace(now=1000.0)
    # The limiter's clock only, so the window can pass without waiting for it.
    monkeypatch.setattr(logs, "time", SimpleNamespace(monotonic=lambda: clock.now))
    limiter = RepeatLimiter(shown=3, window=60)
    assert [limiter.filter(record("accept failed")) for _ in range(10)] == [True] * 3 + [False] * 7
    clock.now += 61
    later = record("accept failed")
    assert limiter.filter(later)
    # The line an operator reads: how many were left out in the window before.
    assert later.getMessage() == "accept failed [7 similar lines suppressed]"


def test_access_lines_are_never_limited() -> None:
    limiter = RepeatLimiter(shown=1, window=60)
    access = [record("GET /", name=logs.ACCESS_LOGGER) for _ in range(5)]
    assert all(limiter.filter(line) for line in access)
