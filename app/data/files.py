"""Files written whole or not at all: one temporary name, one rename, one sweep of leftovers.

Everything the app writes for others to read (a download, an extracted release, a snapshot,
an evaluation report) is written under a temporary name beside its destination and renamed
into place once complete, so a reader sees the old version or the new one, never half. A
process killed mid-write leaves its temporary behind: `clean_leftovers` removes those, under
the lock of whatever it guards so that nobody's write in progress goes with them.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
# What earlier versions named a folder being extracted: still swept, never written.
OLD_FOLDER_SUFFIX = ".tmp"


def partial_path(path: Path) -> Path:
    """A fresh temporary name beside `path`, hidden, that `clean_leftovers` recognises."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{PART_SUFFIX}")


@contextlib.contextmanager
def atomic_write(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write (a file or a folder) and rename it into place.

    On success the temporary replaces `path` (a folder already there is removed first, since
    a rename cannot replace a folder that holds files); on failure it is removed and `path`
    is left as it was. `durable` flushes a file to disk before the rename, so a crash cannot
    leave a complete name over incomplete contents.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    try:
        yield temporary
        if durable and temporary.is_file():
            fd = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if temporary.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):  # gone already after the rename
            _remove(temporary)


def clean_leftovers(folder: Path, name: str, what: str) -> int:
    """Remove the temporaries an interrupted write of `folder/name*` left (call under its lock).

    `what` names them in the log ("snapshot", "download or extraction"). A read-only folder
    keeps them, with a warning: whoever can write there removes them. Returns how many went.
    """
    stem = glob.escape(name)
    leftovers = [
        *folder.glob(f".{stem}.*{PART_SUFFIX}"),
        *folder.glob(f".{stem}.*{OLD_FOLDER_SUFFIX}"),
    ]
    for leftover in leftovers:
        try:
            _remove(leftover)
        except OSError as exc:
            log.warning("Leaving the partial %s %s: %s", what, leftover.name, exc.strerror)
            return 0
    if leftovers:
        log.warning("Removed %d partial %s file(s) an interrupted write left", len(leftovers), what)
    return len(leftovers)


def _remove(path: Path) -> None:
    """Remove a file or a folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
