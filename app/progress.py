"""The progress bar `movierec build` and `movierec evaluate` draw on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    """A one-line progress bar on a terminal stream (stderr), redrawn only when it moves."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._shown: tuple[str, int] | None = None
        self._open = False

    def __call__(self, what: str, done: int, total: int | None) -> None:
        """Show `what` at done/total; a finished task ends its line."""
        filled = self.width * done // total if total else 0
        state = (what, filled if total else done)
        if state == self._shown and done != total:
            return
        if self._shown is not None and self._shown[0] != what and self._open:
            self.stream.write("\n")
        self._shown = state
        self._open = not (total and done >= total)
        if total:
            bar = "#" * filled + "." * (self.width - filled)
            line = f"\r{what[:40]:<40} [{bar}] {done}/{total}"
        else:
            line = f"\r{what[:40]:<40} {done:,}"
        self.stream.write(line)
        if total and done >= total:
            self.stream.write("\n")
        self.stream.flush()
