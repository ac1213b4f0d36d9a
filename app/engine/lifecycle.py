"""How a worker gets its model: the first map-or-build, the child build, failure and retry.

At start the worker fetches the release and maps its snapshot, or builds the snapshot of the
matrix (in a thread) so that the original algorithm serves at once. Whatever enabled
algorithm that snapshot lacks comes from ONE place: a child process, `python -m app build`
at lower CPU priority, which fits them all and renames a complete snapshot into place. One
worker at a time runs it (a lock beside the snapshot); the reloader switches every worker
to its snapshot. Nothing is fitted in the server's own threads. A failed build, the first
or the child, is tried again with app.backoff's pauses, or at once on `retry()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

from app import metrics
from app.backoff import Backoff
from app.config import Settings
from app.data import lock
from app.data.errors import DatasetError
from app.data.lock import LockAbandoned
from app.engine.build import build_model, new_algorithm
from app.engine.choice import NOT_ENABLED
from app.engine.freezer import Freezer
from app.engine.model import Model
from app.engine.state import ServingState, algorithm_status, identity, model_fields
from app.engine.status import AlgorithmStatus, Availability, State, Status
from app.recommender import ALGORITHMS

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE = 300.0
BUILD_NICENESS = 10
TURN_SECONDS = 1.0
"""How often a worker waiting for another's child build looks again."""
BUILD_FAILED = "its build failed and is tried again in the background; the server log has details"
NO_SNAPSHOT = (
    "the snapshot could not be written to DATA_DIR, so it cannot be built here; "
    "run `movierec build` where DATA_DIR is writable"
)


def _running(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done()


class Lifecycle:
    """Starts, stops and retries the builds of one worker, publishing what they give to `state`."""

    def __init__(self, settings: Settings, state: ServingState) -> None:
        self.settings = settings
        self.state = state
        self._backoff = Backoff(settings.retry_backoff, MAX_RETRY_PAUSE)
        self._failures = 0
        """Failed builds in a row, the first or the child's: the pause before the next grows."""
        self._loading: asyncio.Task[None] | None = None
        self._completing: asyncio.Task[None] | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._freezer = Freezer()

    def start(self) -> None:
        """Load the model in the background unless it is loading or loaded."""
        if _running(self._loading) or self.state.ready:
            return
        self._cancel_retry()
        self._stopping.clear()
        # Loading from this moment, so a page rendered right after a retry already polls.
        self.state.publish(Status(State.LOADING, "starting"))
        self._loading = self._task(self._load(), "engine-load")

    def retry(self) -> None:
        """Try a failed build again now: the first one, or the child's for what it left out."""
        if not self.state.ready:
            self.start()
            return
        if _running(self._completing):
            return
        failed = [
            name
            for name, status in self.state.availability().items()
            if status.reason == BUILD_FAILED
        ]
        if failed:
            self._cancel_retry()
            preparing = {name: algorithm_status(name, Availability.PREPARING) for name in failed}
            self.state.publish(availability=preparing)
            self._completing = self._task(self._complete(self.state.model), "engine-child-build")

    async def stop(self) -> None:
        """Cancel the load, the child build (terminating it), a pending retry and freeze."""
        self._stopping.set()
        await self._freezer.stop()
        for task in (self._loading, self._completing, self._retrying):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def serve(self, model: Model, seconds_to_ready: float | None = None) -> None:
        """Serve `model` from now on, and build in a child what it lacks.

        Requests already running keep the model they chose (their Choice holds it); what
        lives is frozen once they let it go (app.engine.freezer).
        """
        replaced = self.state.model if self.state.ready else None
        availability = {name: availability_of(self.settings, name, model) for name in ALGORITHMS}
        if seconds_to_ready is None:  # a switch: the time to the first model stays
            seconds_to_ready = self.state.status.seconds_to_ready
        status = Status(
            State.READY, "ready", seconds_to_ready=seconds_to_ready, **model_fields(model)
        )
        self.state.publish(status, model=model, availability=availability)
        self._freezer.swapped(replaced)
        del replaced
        if self.state.preparing() and not _running(self._completing):
            self._completing = self._task(self._complete(model), "engine-child-build")

    async def _load(self) -> None:
        """Fetch, then map the snapshot or build the matrix's; a failure is published."""
        started = time.monotonic()
        try:
            model = await build_model(self.settings, self._progress, self._stopping)
        except LockAbandoned:
            return
        except DatasetError as exc:
            log.error("Dataset unavailable: %s", exc)
            self._fail(exc.public, exc.hint)
            return
        except Exception:
            log.exception("Building the model failed")
            self._fail(
                "Building the model failed unexpectedly; the server log has the details.",
                "Retry; if it fails again, report the log.",
            )
            return
        self._failures = 0
        elapsed = time.monotonic() - started
        log.info(
            "Model ready in %.2fs (%s): %d users, %d movies, %d ratings",
            elapsed,
            "from the snapshot" if model.from_snapshot else "built from CSV",
            model.matrix.n_users,
            model.matrix.n_items,
            model.matrix.nnz,
        )
        self.serve(model, elapsed)

    async def _complete(self, model: Model) -> None:
        """Have the child build what `model` lacks: this worker's turn, or another's.

        The worker holding the turn (a lock beside the snapshot) runs the build; the others
        wait for the reloader to switch them to its snapshot. A worker whose turn comes while
        algorithms are still missing, and no newer snapshot waits to be mapped, builds itself.
        """
        assert model.path is not None
        turn = lock.build_turn_lock(model.path)
        while self.state.preparing():
            if identity(model.path) in (None, self.state.seen):
                with lock.held_if_free(turn) as mine:
                    # Another worker's build may have just renamed its snapshot into place.
                    if mine and identity(model.path) in (None, self.state.seen):
                        await self._child_build()
                        return
            with contextlib.suppress(TimeoutError):
                await self.state.wait_until(lambda: not self.state.preparing(), TURN_SECONDS)

    async def _child_build(self) -> None:
        """Run the child build; on failure say so and schedule the next try."""
        code = await run_build_child(self.settings)
        if code == 0:
            # The reloader maps its snapshot within a second.
            self._failures = 0
            return
        self._failures += 1
        pause = self._backoff.pause(self._failures)
        log.error(
            "The background build exited with %s (its reasons are in the log above); "
            "trying again in %.0fs",
            code,
            pause,
        )
        failed = {
            name: algorithm_status(name, Availability.UNAVAILABLE, BUILD_FAILED)
            for name in self.state.preparing()
        }
        self.state.publish(availability=failed)
        self._retrying = self._task(self._after(pause), "engine-retry")

    def _progress(self, phase: str, done: int, total: int | None) -> None:
        self.state.publish(Status(State.LOADING, phase, done, total))

    def _fail(self, error: str, hint: str) -> None:
        """Publish a failed load, with what clients may read, and try again later by itself."""
        self.state.publish(Status(State.FAILED, "failed", error=error, hint=hint))
        self._failures += 1
        self._retrying = self._task(
            self._after(self._backoff.pause(self._failures)), "engine-retry"
        )

    async def _after(self, pause: float) -> None:
        """Retry after `pause` seconds (sooner if asked: retry() cancels this)."""
        await asyncio.sleep(pause)
        log.info("Trying the build again")
        self._retrying = None
        self.retry()

    def _cancel_retry(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            self._retrying = None

    @staticmethod
    def _task(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(work, name=name)


def availability_of(settings: Settings, name: str, model: Model) -> AlgorithmStatus:
    """Where `name` is with this model: fitted, left out and why, or to be built."""
    if name in model.algorithms:
        return algorithm_status(name, Availability.READY)
    if not settings.enabled(name):
        return algorithm_status(name, Availability.UNAVAILABLE, NOT_ENABLED)
    fits = {fit.name: fit for fit in model.manifest.fits} if model.manifest else {}
    fit = fits.get(name)
    if fit and fit.reason and fit.params == new_algorithm(settings, name).params():
        return algorithm_status(name, Availability.UNAVAILABLE, fit.reason)
    if model.path is None:
        return algorithm_status(name, Availability.UNAVAILABLE, NO_SNAPSHOT)
    return algorithm_status(name, Availability.PREPARING)


async def run_build_child(settings: Settings) -> int:
    """`python -m app build` with these settings, niced; its log lines join the server's."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "build",
        # Without the workers' metrics folder: the build serves no requests.
        env={
            **{k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV},
            **settings.as_environ(),
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
    )
    # After requests: the build must not take the cores from them. (Set from here rather
    # than in the child before exec, which is unsafe in a process with threads.)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, process.pid, BUILD_NICENESS)
    try:
        return await process.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await asyncio.shield(process.wait())
        raise
