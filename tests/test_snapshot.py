"""The snapshot file: arrays round-trip, mapped read-only; stale or damaged files are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.data import snapshot
from app.data.snapshot import SnapshotError

ARRAYS: dict[str, np.ndarray] = {
    "ids": np.array([3, 1, 4, 1, 5], dtype=np.int64),
    "values": np.linspace(0.5, 5.0, 10, dtype=np.float32),
    "empty": np.zeros(0, dtype=np.int32),
    "grid": np.arange(12, dtype=np.int16).reshape(3, 4),
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "snapshots" / "model.snapshot"
    snapshot.write(path, ARRAYS, {"version": 1, "source": "abc"})
    return path


def test_arrays_round_trip_read_only_and_aligned(path: Path) -> None:
    arrays, meta = snapshot.read(path, {"version": 1})
    assert meta == {"version": 1, "source": "abc"}
    assert arrays.keys() == ARRAYS.keys()
    for name, array in ARRAYS.items():
        assert arrays[name].dtype == array.dtype and (arrays[name] == array).all()
        assert not arrays[name].flags.writeable
    assert arrays["values"].ctypes.data % 64 == arrays["ids"].ctypes.data % 64
    assert [p.name for p in path.parent.iterdir()] == ["model.snapshot"]


def test_stale_metadata_is_refused(path: Path) -> None:
    with pytest.raises(SnapshotError, match="stale: source differs"):
        snapshot.read(path, {"source": "xyz"})


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no snapshot") as info:
        snapshot.read(tmp_path / "absent", {})
    assert str(tmp_path) in str(info.value) and str(tmp_path) not in info.value.public


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) - 8], "runs past the end"),
        (lambda b: b"NOTASNAP" + b[8:], "is not a snapshot"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "fails its checksum"),
        (lambda b: b[:20] + b"{" + b[21:], "damaged"),
        (lambda b: b[:10], "damaged"),
        (lambda b: b"", "cannot map"),
    ],
)
def test_damage_is_detected(path: Path, damage: Callable[[bytes], bytes], message: str) -> None:
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SnapshotError, match=message) as info:
        snapshot.read(path, {"version": 1})
    # Clients read which snapshot, never where the server keeps it.
    assert message in info.value.public and str(path.parent) not in info.value.public


def test_a_failed_write_leaves_the_old_snapshot(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        snapshot.write(path, {"other": np.ones(1000)}, {})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.snapshot"]


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Python objects"):
        snapshot.write(tmp_path / "x", {"titles": np.array(["a", None], dtype=object)}, {})
