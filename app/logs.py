"""Logging for every process of the server: one format, request ids, and no floods.

A fault that repeats on every loop iteration (running out of file descriptors makes asyncio
log each failed accept) must not fill the disk: after a few copies of the same line in a
window, further copies are counted and summarised once the window ends.

Each request has an id (the client's X-Request-ID when it is a sane one, else a new one),
kept in a context variable, so every line logged while answering it carries it: in threads
too, since asyncio.to_thread copies the context.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "app.access"
"""One line per answered request (ACCESS_LOG): many alike by design, so never limited."""
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being answered in this context, if any."""
# Letters, digits, dot, underscore and hyphen, as UUIDs, ULIDs and trace ids are written; no
# spaces, quotes or control characters that could forge or break a log line.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# What every LogRecord has; anything else on a record was passed as `extra` and is shown.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
REPEATS_SHOWN = 5
"""Copies of one line (same logger and message template) let through per window."""
WINDOW_SECONDS = 10.0
LINES_TRACKED = 1024
"""Distinct lines whose windows are kept; past it, the half seen least recently is forgotten."""


class RepeatLimiter(logging.Filter):
    """Lets REPEATS_SHOWN copies of a line through per WINDOW_SECONDS, then counts the rest."""

    def __init__(self, shown: int = REPEATS_SHOWN, window: float = WINDOW_SECONDS) -> None:
        super().__init__()
        self.shown = shown
        self.window = window
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit the record; a repeat beyond the allowance is dropped and counted."""
        if record.name == ACCESS_LOGGER:
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            # Taken out and put back: the dict's order is then the order lines were last
            # seen, so a flood that goes on is never the line forgotten below.
            started, count = self._seen.pop(key, (now, 0))
            if now - started > self.window:
                if count > self.shown:
                    record.msg = f"{record.msg} [{count - self.shown} similar lines suppressed]"
                started, count = now, 0
            self._seen[key] = (started, count + 1)
            if len(self._seen) > LINES_TRACKED:  # many distinct lines: forget the stalest half
                self._seen = dict(list(self._seen.items())[-(LINES_TRACKED // 2) :])
        return count < self.shown


def request_id(asked: str | None) -> str:
    """The id for a new request: `asked` (a client's X-Request-ID) if sane, else a fresh one."""
    if asked and _SANE_ID.fullmatch(asked):
        return asked
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _new_id_series() -> None:
    """Request ids are this process's random 64 bits, then a count: unique across workers
    and restarts, and without uuid4's call into the kernel for every request."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = secrets.token_hex(8), itertools.count()


_ID_PREFIX, _ID_COUNTER = "", itertools.count()
_new_id_series()
os.register_at_fork(after_in_child=_new_id_series)


class TextFormatter(logging.Formatter):
    """FORMAT, with ` [request <id>]` at the end of lines logged while answering a request.

    Times are UTC with the offset written out (2026-01-02 03:04:05.678+00:00), as in JSON
    lines: a line read on another machine, or beside a JSON one, means the same moment.
    """

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's time in UTC, to the millisecond, with its offset."""
        moment = datetime.fromtimestamp(record.created, UTC)
        if datefmt:
            return moment.strftime(datefmt)
        return moment.isoformat(sep=" ", timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the request id if there is one."""
        line = super().format(record)
        rid = REQUEST_ID.get()
        return f"{line} [request {rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        rid = REQUEST_ID.get()
        if rid:
            line["request_id"] = rid
        line.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, log_format: str = "text", text: str = FORMAT) -> None:
    """Log at `level` as `log_format` (text or json), repeats limited, unless set up already.

    Handlers someone else installed (a test runner, an embedding program) are left as they are.
    `text` is the line format of text logs.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(text))
        handler.addFilter(RepeatLimiter())
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("app").setLevel(level)
    logging.getLogger("hypercorn").setLevel(level)
