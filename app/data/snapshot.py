"""A binary snapshot of named NumPy arrays: written once, memory-mapped read-only by every worker.

Layout: an 8-byte magic, a little-endian u32 format version and u32 header length, a JSON
header (the caller's metadata plus each array's dtype, shape and offset), then the arrays,
each starting on a 64-byte boundary so a mapping can use them in place. Nothing is parsed
on load: `read()` checks the header and maps each array, so extra workers share the page
cache instead of each holding a copy.

A snapshot is never changed in place: `write()` makes a new file and renames it over the old,
and a mapping keeps the old file's pages until it is closed. A file truncated in place by
someone else would kill the process with SIGBUS at its next read of a page past the new end,
so on Linux `read()` also takes a read lease on the file (see `_Lease`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import mmap
import os
import signal
import struct
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.data.errors import DatasetError
from app.data.files import atomic_write, partial_path

log = logging.getLogger(__name__)

MAGIC = b"MVRECSNP"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
_ALIGN = 64


class SnapshotError(DatasetError):
    """The snapshot is missing, stale or damaged; the caller rebuilds it."""

    hint = "Run `movierec build` again, or remove the snapshot from DATA_DIR/snapshots."


class SnapshotMissing(SnapshotError):
    """There is no snapshot yet: the usual first start, not damage."""


def write(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write `arrays` and `meta` to `path` through a temporary file renamed into place."""
    layout: dict[str, dict[str, Any]] = {}
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    offset = 0
    for name, array in contiguous.items():
        if array.dtype.hasobject:
            raise ValueError(f"{name} holds Python objects, which cannot be mapped")
        offset = _aligned(offset)
        layout[name] = {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "offset": offset,
            "crc32": zlib.crc32(array.data),
        }
        offset += array.nbytes
    header = json.dumps({"meta": dict(meta), "arrays": layout}).encode()
    start = _aligned(_PREFIX.size + len(header))
    with atomic_write(path, durable=True) as temporary, temporary.open("wb") as out:
        out.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)))
        out.write(header)
        for name, array in contiguous.items():
            out.seek(start + layout[name]["offset"])
            out.write(array.data)
        out.truncate(start + offset)


def read(path: Path, expect: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Map the arrays of the snapshot at `path` read-only; SnapshotError unless `meta` has `expect`.

    `expect` holds what the snapshot must have been written from (a format version of the
    caller's, a fingerprint of the source files): any mismatch means stale, not damaged.
    """
    try:
        with path.open("rb") as source:
            lease = _Lease.take(source.fileno(), path)
            try:
                mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
            except BaseException:
                if lease is not None:
                    lease.release()
                raise
            if lease is not None:
                lease.watch(mapped)
    except FileNotFoundError:
        raise SnapshotMissing(
            f"no snapshot at {path}", public=f"no snapshot {path.name} yet"
        ) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SnapshotError(
            f"cannot map {path}: {exc}", public=f"cannot map the snapshot {path.name}: {reason}"
        ) from None
    try:
        magic, version, header_length = _PREFIX.unpack_from(mapped, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise SnapshotError(f"{path.name} is not a snapshot of format {FORMAT_VERSION}")
        header = json.loads(bytes(mapped[_PREFIX.size : _PREFIX.size + header_length]))
        meta = header["meta"]
        for key, value in expect.items():
            if meta.get(key) != value:
                raise SnapshotError(f"{path.name} is stale: {key} differs")
        start = _aligned(_PREFIX.size + header_length)
        arrays = {
            name: _view(mapped, start, spec, len(mapped)) for name, spec in header["arrays"].items()
        }
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        # The mapping closes once the views made before the failure are gone.
        raise SnapshotError(f"{path.name} is damaged: {exc}") from None
    return arrays, meta


def _view(mapped: mmap.mmap, start: int, spec: Mapping[str, Any], size: int) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    shape = tuple(int(n) for n in spec["shape"])
    offset = start + int(spec["offset"])
    count = int(np.prod(shape, dtype=np.int64))
    if offset < start or offset + count * dtype.itemsize > size:
        raise SnapshotError(f"array at offset {offset} runs past the end of the file")
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
    # Reading every byte once also brings the pages in before the first request needs them.
    if zlib.crc32(array.data) != spec["crc32"]:
        raise SnapshotError(f"array at offset {offset} fails its checksum")
    return array.reshape(shape)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


class _Lease:
    """A read lease on a mapped snapshot, so that a truncation by someone else cannot kill us.

    The kernel holds back any other process that opens the file to write or truncates it (for
    up to /proc/sys/fs/lease-break-time, 45 s by default) and marks the lease as breaking. A
    thread notices within POLL_SECONDS, copies the mapped bytes into a new unlinked file beside
    it, maps that copy over the same addresses (so every array keeps working, unchanged) and
    only then lets go, after which the other process goes on. Linux only; the file must belong
    to this user. Anything that stops the lease from being taken leaves the mapping as before.
    """

    POLL_SECONDS = 0.05
    _all: ClassVar[set[_Lease]] = set()
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _poller: ClassVar[threading.Thread | None] = None

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.address = 0
        self.length = 0

    @classmethod
    def take(cls, fd: int, path: Path) -> _Lease | None:
        """A lease on the file open at `fd` (held on a dup of it), or None if none can be had."""
        if not sys.platform.startswith("linux"):
            return None
        own = os.dup(fd)
        try:
            # A signal that is ignored unless handled: the lease's default, SIGIO, would kill us.
            fcntl.fcntl(own, fcntl.F_SETSIG, signal.SIGURG)
            fcntl.fcntl(own, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as exc:
            os.close(own)
            log.debug("No read lease on %s (%s): a truncation in place is not guarded", path, exc)
            return None
        return cls(own, path)

    def watch(self, mapped: mmap.mmap) -> None:
        """Guard `mapped` from now on; the lease goes when the mapping is closed or collected."""
        if len(mapped):
            view = np.frombuffer(mapped, dtype=np.uint8)
            self.address, self.length = view.ctypes.data, len(mapped)
            del view
        weakref.finalize(mapped, self.release)
        with _Lease._lock:
            _Lease._all.add(self)
            if _Lease._poller is None:
                _Lease._poller = threading.Thread(
                    target=_Lease._poll, name="snapshot-leases", daemon=True
                )
                _Lease._poller.start()

    def release(self) -> None:
        """Let go of the lease (once)."""
        with _Lease._lock:
            _Lease._all.discard(self)
            fd, self.fd = self.fd, -1
        if fd >= 0:
            # The mapping holds the same open file (a dup), so closing ours alone keeps the lease.
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            os.close(fd)

    @classmethod
    def _poll(cls) -> None:
        while True:
            with cls._lock:
                leases = list(cls._all)
            for lease in leases:
                try:
                    breaking = fcntl.fcntl(lease.fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK
                except (OSError, ValueError):  # released meanwhile
                    continue
                if breaking:
                    lease.move_to_copy()
            time.sleep(cls.POLL_SECONDS)

    def move_to_copy(self) -> None:
        """Map a private copy of the bytes over the mapping, then let the lease go."""
        try:
            if self.length:
                _map_copy_over(self.address, self.length, self.path.parent)
            log.warning(
                "Someone opened %s to change it in place; this process now serves from a copy of "
                "it. Snapshots are replaced by renaming a new file, never edited",
                self.path.name,
            )
        except OSError as exc:
            log.error("Could not copy %s before it changes: %s", self.path.name, exc)
        self.release()


_MAP_FIXED = 0x10


def _libc_mmap() -> Any:
    """libc's mmap(2), which can map over existing addresses (Python's mmap module cannot)."""
    function = ctypes.CDLL(None, use_errno=True).mmap
    function.restype = ctypes.c_void_p
    function.argtypes = (
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    )  # fmt: skip
    return function


def _map_copy_over(address: int, length: int, folder: Path) -> None:
    """Copy `length` bytes at `address` into an unlinked file in `folder`, mapped at `address`."""
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        name = partial_path(folder / "copy")
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.unlink(name)
    try:
        source = (ctypes.c_char * length).from_address(address)
        written = 0
        with memoryview(source).cast("B") as data:
            while written < length:
                written += os.write(fd, data[written : written + (16 << 20)])
        # MAP_FIXED swaps the pages under the same addresses at once: a reader in another
        # thread sees the old bytes or the copy's, which are the same.
        result = _libc_mmap()(address, length, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd, 0)
        if result != address:
            raise OSError(ctypes.get_errno(), "mmap of the copy failed")
    finally:
        os.close(fd)
