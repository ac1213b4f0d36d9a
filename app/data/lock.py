"""One file lock for the workers that share DATA_DIR: whoever holds it fetches or builds.

The lock is an advisory `flock` on a small file beside what it guards. Waiting polls rather
than blocks, so that a waiter on the event loop never stalls it and a waiter in a thread
notices when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.1


def dataset_lock(data_dir: Path, name: str) -> Path:
    """The lock held while fetching or extracting the release cached as `data_dir/name`."""
    return data_dir / f".{name}.lock"


def snapshot_lock(snapshot: Path) -> Path:
    """The lock held while writing the snapshot at `snapshot` or clearing what a write left."""
    return snapshot.with_name(f".{snapshot.name}.lock")


def build_turn_lock(snapshot: Path) -> Path:
    """The lock a worker holds while its child `movierec build` rebuilds `snapshot`.

    Apart from `snapshot_lock`: the child takes that one itself to rename its snapshot.
    """
    return snapshot.with_name(f".{snapshot.name}.build")


class LockAbandoned(Exception):
    """The server stopped while waiting for another worker to release the lock."""


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


def _open(path: Path) -> int | None:
    """A descriptor to lock; None where DATA_DIR is read-only and the lock file is missing.

    Replicas may mount a DATA_DIR that a build job wrote: there they can only read, flock
    works on a read-only descriptor, and with no lock file there is no writer to wait for.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def held(
    path: Path, on_wait: Callable[[], None], stopping: threading.Event | None = None
) -> Iterator[None]:
    """Hold the lock at `path` (blocking, for threads); `on_wait` is called once if it is taken.

    LockAbandoned if `stopping` is set while waiting.
    """
    fd = _open(path)
    if fd is None:
        yield
        return
    try:
        if not _try_lock(fd):
            on_wait()
            never = threading.Event()
            while not _try_lock(fd):
                if (stopping or never).wait(POLL_SECONDS):
                    raise LockAbandoned(f"stopped while waiting for {path.name}")
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)


@contextlib.contextmanager
def held_if_free(path: Path) -> Iterator[bool]:
    """Hold the lock at `path` if nobody does; yields whether it is held (never waits)."""
    fd = _open(path)
    if fd is None:
        yield False
        return
    try:
        yield _try_lock(fd)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def held_async(path: Path, on_wait: Callable[[], None]) -> AsyncIterator[None]:
    """Hold the lock at `path` without blocking the event loop while another worker has it."""
    fd = _open(path)
    if fd is None:
        yield
        return
    try:
        if not _try_lock(fd):
            on_wait()
            while not _try_lock(fd):
                await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)
