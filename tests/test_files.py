"""Files written whole or not at all, the sweep of what an interrupted write left, lock names."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.data import lock
from app.data.files import atomic_write, clean_leftovers


def hidden(folder: Path) -> list[str]:
    """The hidden names in `folder`: where temporaries would show."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_file_appears_whole_under_its_name(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    with atomic_write(target, durable=True) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert hidden(target.parent) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the disk filled up")
    assert target.read_text() == "old"
    assert hidden(tmp_path) == []


def test_a_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "ml-tiny"
    target.mkdir()
    (target / "stale.csv").write_text("old")
    with atomic_write(target) as staging:
        staging.mkdir()
        (staging / "ratings.csv").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["ratings.csv"]
    assert hidden(tmp_path) == []


def test_a_failed_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "ml-tiny"
    with pytest.raises(ValueError), atomic_write(target) as staging:
        (staging / "sub").mkdir(parents=True)
        raise ValueError("an unsafe member")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_one_name_are_swept_and_others_kept(tmp_path: Path) -> None:
    (tmp_path / ".ml-tiny.zip.0123.part").write_bytes(b"half a download")
    (tmp_path / ".ml-tiny.4567.part" / "ml-tiny").mkdir(parents=True)
    (tmp_path / ".ml-tiny.89ab.tmp").mkdir()  # an extraction by an earlier version
    kept = [".ml-tiny.lock", ".other.0123.part", "ml-tiny.zip"]
    for name in kept:
        (tmp_path / name).write_bytes(b"")
    assert clean_leftovers(tmp_path, "ml-tiny", "download or extraction") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == kept


def test_nothing_to_sweep_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert clean_leftovers(tmp_path, "ml-tiny", "snapshot") == 0
    assert caplog.records == []


def test_each_lock_has_its_own_file(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshots" / "ml-tiny.snapshot"
    names = {
        lock.dataset_lock(tmp_path, "ml-tiny"),
        lock.snapshot_lock(snapshot),
        lock.build_turn_lock(snapshot),
    }
    assert len(names) == 3
    assert all(path.name.startswith(".") for path in names)
    # A lock is never mistaken for a leftover.
    for path in names:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert clean_leftovers(tmp_path, "ml-tiny", "download or extraction") == 0
    assert clean_leftovers(snapshot.parent, snapshot.name, "snapshot") == 0
    assert all(path.exists() for path in names)
