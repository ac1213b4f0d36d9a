"""Logging for every process of the server: one format, and no floods of the same line.

A fault that repeats on every loop iteration (running out of file descriptors makes asyncio
log each failed accept) must not fill the disk: after a few copies of the same line in a
window, further copies are counted and summarised once the window ends.
"""

from __future__ import annotations

import logging
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REPEATS_SHOWN = 5
"""Copies of one line (same logger and message template) let through per window."""
WINDOW_SECONDS = 10.0


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
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            started, count = self._seen.get(key, (now, 0))
            if now - started > self.window:
                if count > self.shown:
                    record.msg = f"{record.msg} [{count - self.shown} similar lines suppressed]"
                started, count = now, 0
            self._seen[key] = (started, count + 1)
            if len(self._seen) > 1024:  # many distinct lines: forget the oldest windows
                self._seen = dict(list(self._seen.items())[-512:])
        return count < self.shown


def configure(level: str) -> None:
    """Log at `level` in the server's format, repeats limited, unless logging is set up already.

    Handlers someone else installed (a test runner, an embedding program) are left as they are.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=FORMAT, level=level)
        for handler in root.handlers:
            handler.addFilter(RepeatLimiter())
    logging.getLogger("app").setLevel(level)
    logging.getLogger("hypercorn").setLevel(level)
