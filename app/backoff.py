"""Exponential backoff, once for every retry in the app: downloads, builds, worker restarts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Pauses that double after each failure in a row, from `first` seconds up to `most`."""

    first: float
    most: float = float("inf")

    def pause(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (none after none)."""
        if failures <= 0:
            return 0.0
        return min(self.most, self.first * 2 ** (failures - 1))
