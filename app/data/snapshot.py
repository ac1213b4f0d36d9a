"""A binary snapshot of named NumPy arrays: written once, memory-mapped read-only by every worker.

Layout: an 8-byte magic, a little-endian u32 format version and u32 header length, a JSON
header (the caller's metadata plus each array's dtype, shape and offset), then the arrays,
each starting on a 64-byte boundary so a mapping can use them in place. Nothing is parsed
on load: `read()` checks the header and maps each array, so extra workers share the page
cache instead of each holding a copy.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"MVRECSNP"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
_ALIGN = 64


class SnapshotError(Exception):
    """The snapshot is missing, stale or damaged; the caller rebuilds it."""


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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with temporary.open("wb") as out:
            out.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)))
            out.write(header)
            for name, array in contiguous.items():
                out.seek(start + layout[name]["offset"])
                out.write(array.data)
            out.truncate(start + offset)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read(path: Path, expect: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Map the arrays of the snapshot at `path` read-only; SnapshotError unless `meta` has `expect`.

    `expect` holds what the snapshot must have been written from (a format version of the
    caller's, a fingerprint of the source files): any mismatch means stale, not damaged.
    """
    try:
        with path.open("rb") as source:
            mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise SnapshotMissing(f"no snapshot at {path}") from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"cannot map {path}: {exc}") from None
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
