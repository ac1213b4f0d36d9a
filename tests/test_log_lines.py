"""What a log line says: its time with the UTC offset, and a flood that stays counted."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from app import logs

TEXT_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00:00) INFO app\.x: hello")


def record(message: str, name: str = "app.x") -> logging.LogRecord:
    """An INFO record of `message` from logger `name`."""
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, (), None)


def test_a_text_line_gives_its_time_in_utc_with_the_offset() -> None:
    line = record("hello")
    line.created = 1_767_323_045.678  # 2026-01-02 03:04:05.678 UTC
    found = TEXT_TIME.fullmatch(logs.TextFormatter().format(line))
    assert found is not None
    assert found.group(1) == "2026-01-02 03:04:05.678+00:00"
    assert datetime.fromisoformat(found.group(1)).timestamp() == 1_767_323_045.678


def test_a_flood_stays_suppressed_while_many_other_lines_come_and_go() -> None:
    limiter = logs.RepeatLimiter(shown=1, window=3600)
    flood = record("accept failed")
    assert limiter.filter(flood), "the first copy is shown"
    let_through = 0
    # Far more distinct lines than the limiter tracks, with the flood going on between them.
    for number in range(3 * logs.LINES_TRACKED):
        assert limiter.filter(record(f"line {number}"))
        if number % 100 == 0:
            let_through += limiter.filter(record("accept failed"))
    assert let_through == 0, "the flood's window was forgotten while it went on"


def test_a_line_forgotten_long_ago_is_shown_again() -> None:
    limiter = logs.RepeatLimiter(shown=1, window=3600)
    assert limiter.filter(record("once"))
    assert not limiter.filter(record("once"))
    for number in range(logs.LINES_TRACKED + 1):
        limiter.filter(record(f"line {number}"))
    assert limiter.filter(record("once")), "the stalest lines are the ones forgotten"
