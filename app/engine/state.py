"""What this worker serves: the status, the current Model, each algorithm's availability.

The bottom of the engine: the lifecycle and the reloader change it, the choice reads it, and
nothing here knows either. Every change goes through `publish()`, which updates the metrics
and wakes whoever waits for a change (`wait_until`), from the event loop or from a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app import metrics
from app.engine.model import Model
from app.engine.status import AlgorithmStatus, Availability, NotReady, State, Status
from app.recommender import ALGORITHMS

FileIdentity = tuple[int, int]
"""Which file a path names: its inode and modification time."""


def identity(path: Path | None) -> FileIdentity | None:
    """Which file is at `path` now, None if none."""
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def algorithm_status(name: str, availability: Availability, reason: str = "") -> AlgorithmStatus:
    """`name` described as the page and the API list it, with where it is."""
    algorithm = ALGORITHMS[name]
    return AlgorithmStatus(
        name, algorithm.label, algorithm.description, algorithm.uses_k, availability, reason
    )


class ServingState:
    """The one mutable record of a worker's engine; the Model inside is replaced whole."""

    def __init__(self) -> None:
        self._status = Status(State.LOADING, "starting")
        self._model: Model | None = None
        self._availability = {
            name: algorithm_status(name, Availability.PREPARING) for name in ALGORITHMS
        }
        self._generation = 0
        self.seen: FileIdentity | None = None
        """The snapshot file last looked at: the one served, or a newer one found unusable."""
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def status(self) -> Status:
        """The current status snapshot."""
        return self._status

    @property
    def model(self) -> Model:
        """The model being served; NotReady (with the failure, if any) while there is none."""
        model = self._model
        if model is None:
            raise NotReady(self._status.error or "The model is still loading")
        return model

    @property
    def ready(self) -> bool:
        """True once a model is being served."""
        return self._model is not None

    @property
    def generation(self) -> int:
        """Counts models swapped in: anything derived from an answer is stale once it changes."""
        return self._generation

    def availability(self) -> Mapping[str, AlgorithmStatus]:
        """Each algorithm by name, in ALGORITHMS' order."""
        return self._availability

    def preparing(self) -> list[str]:
        """The algorithms still waiting for a build."""
        return [
            name
            for name, status in self._availability.items()
            if status.availability is Availability.PREPARING
        ]

    def settled(self) -> bool:
        """True once the model is ready with no algorithm preparing, or the build failed."""
        if self._status.state is State.FAILED:
            return True
        return self.ready and not self.preparing()

    def publish(
        self,
        status: Status | None = None,
        *,
        model: Model | None = None,
        availability: Mapping[str, AlgorithmStatus] | None = None,
    ) -> None:
        """Record a change (any of the three), update the metrics and wake the waiters.

        A new `model` comes with its algorithms' availability and starts a new generation.
        Safe from a worker thread (the build reports its progress from one).
        """
        if availability is not None:
            self._availability = {**self._availability, **availability}
        if model is not None:
            self._model = model
            self._generation += 1
            self.seen = identity(model.path)
            manifest = model.manifest
            if manifest is not None:
                metrics.serving(
                    manifest.build_id,
                    manifest.built_at,
                    {fit.name: fit.seconds for fit in manifest.fits if not fit.reason},
                )
        if status is not None:
            if status.state is not self._status.state:
                metrics.engine_state(status.state.value)
            self._status = status
        self._wake()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Return once `done()` is true, checked after each publish (else TimeoutError)."""
        self._loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while not done():
            changed = self._changed
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"still {self._status.phase}; preparing {self.preparing()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    def _wake(self) -> None:
        # Waiters hold the event they saw: set it and give later waiters a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: the event belongs to the loop
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(changed.set)
            return
        changed.set()


def model_fields(model: Model) -> dict[str, Any]:
    """The Status fields that describe a model: its size and the snapshot it was mapped from."""
    matrix = model.matrix
    ids = matrix.user_ids
    sizes = {
        "users": matrix.n_users,
        "movies": matrix.n_items,
        "ratings": matrix.nnz,
        "user_id_range": (int(ids[0]), int(ids[-1])),
    }
    manifest = model.manifest
    if manifest is None:
        return {**sizes, "snapshot_id": "", "built_at": "", "snapshot_algorithms": ()}
    return {
        **sizes,
        "snapshot_id": manifest.build_id,
        "built_at": manifest.built_at,
        "snapshot_algorithms": tuple(fit.name for fit in manifest.fits if not fit.reason),
    }
