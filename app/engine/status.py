"""Where the engine is and what it can serve: public, immutable records and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Where the engine is: still building, ready to answer, or failed with a reason."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    """A snapshot of the engine's progress, safe to render or serialise.

    `error` says what went wrong and `hint` what an operator can do about it. Once ready,
    `snapshot_id`, `built_at` and `snapshot_algorithms` say which snapshot is served and
    which fitted algorithms it holds.
    """

    state: State
    phase: str
    done: int = 0
    total: int | None = None
    error: str = ""
    hint: str = ""
    users: int = 0
    movies: int = 0
    ratings: int = 0
    user_id_range: tuple[int, int] | None = None
    seconds_to_ready: float | None = None
    snapshot_id: str = ""
    built_at: str = ""
    snapshot_algorithms: tuple[str, ...] = ()

    @property
    def fraction(self) -> float | None:
        """Share of the current phase done, when it is measurable."""
        if self.total:
            return min(1.0, self.done / self.total)
        return None


class Availability(StrEnum):
    """Where an algorithm is: serving, being fitted in the background, or left out."""

    READY = "ready"
    PREPARING = "preparing"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class AlgorithmStatus:
    """One algorithm as the page and the API list it: what it is and whether it serves."""

    name: str
    label: str
    description: str
    uses_k: bool
    availability: Availability
    reason: str = ""


class NotReady(RuntimeError):
    """The model is not built yet (or its build failed)."""


class UnknownAlgorithm(ValueError):
    """No algorithm has this name; the message lists the ones there are."""


class AlgorithmUnavailable(RuntimeError):
    """The algorithm asked for is still being prepared, or cannot run on this dataset."""
