"""Damaged or half-written files in DATA_DIR are put right by the next build, and a snapshot is
only ever replaced whole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from app.config import Settings
from app.data import snapshot as snapshot_file
from app.engine import Service, State


async def loaded(settings: Settings) -> Service:
    """A Service started on `settings`, once its model is served or its load has failed."""
    service = Service(settings)
    service.start()
    await service.loaded()
    return service


async def test_a_same_size_edit_of_the_ratings_is_undone(
    settings: Settings, tiny_zip: Path
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    first = await loaded(settings)
    before = (await first.recommend(1, n=3, k=2)).value
    ratings = settings.data_dir / "ml-tiny" / "ml-tiny" / "ratings.csv"
    text = ratings.read_text()
    edited = text.replace("2,30,5.0", "2,30,1.0")
    assert edited != text and len(edited) == len(text)
    ratings.write_text(edited)
    second = await loaded(settings)
    assert second.ready
    assert (await second.recommend(1, n=3, k=2)).value == before
    assert ratings.read_text() == text


async def test_same_size_garbage_in_the_extracted_files_is_recovered(
    settings: Settings, tiny_zip: Path
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    first = await loaded(settings)
    assert first.ready
    ratings = settings.data_dir / "ml-tiny" / "ml-tiny" / "ratings.csv"
    text = ratings.read_bytes()
    stat = ratings.stat()
    ratings.write_bytes(b"\xff" * len(text))
    os.utime(ratings, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its time kept
    for snapshot in (settings.data_dir / "snapshots").iterdir():
        snapshot.unlink()
    second = await loaded(settings)
    assert second.status.state is State.READY, second.status
    assert ratings.read_bytes() == text


async def test_leftovers_of_interrupted_work_are_removed(
    settings: Settings, tiny_zip: Path
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    data = settings.data_dir
    (data / ".ml-tiny.0123.tmp" / "ml-tiny").mkdir(parents=True)
    (data / ".ml-tiny.zip.4567.part").write_bytes(b"half a download")
    (data / "snapshots").mkdir(parents=True)
    (data / "snapshots" / ".ml-tiny.snapshot.89ab.part").write_bytes(b"half a snapshot")
    service = await loaded(settings)
    assert service.ready
    assert not list(data.glob(".*.tmp")) and not list(data.glob(".*.part"))
    assert not list((data / "snapshots").glob(".*.part"))
    assert list((data / "snapshots").glob("*.snapshot")), "the build wrote its own snapshot"


def test_a_snapshot_is_replaced_never_changed_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.snapshot"
    snapshot_file.write(path, {"x": np.arange(1000, dtype=np.int32)}, {"v": 1})
    before = path.read_bytes()
    with path.open("rb") as old:
        snapshot_file.write(path, {"x": np.arange(2000, dtype=np.int32)}, {"v": 2})
        assert os.fstat(old.fileno()).st_ino != path.stat().st_ino
        assert old.read() == before  # a reader of the old file still sees it whole
