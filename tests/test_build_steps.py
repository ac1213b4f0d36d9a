"""The build's steps, written once, as `movierec build` and a server's first start compose them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from app.config import Settings
from app.engine.build import build_model, build_snapshot, snapshot_path

Event = tuple[str, int, int | None]


@pytest.fixture
def tiny(settings: Settings, tiny_zip: Path) -> Settings:
    """The tiny release as a local zip, with the original and popularity enabled."""
    return settings.replace(source=str(tiny_zip), algorithms=("original", "popularity"))


def phases(events: list[Event]) -> list[str]:
    """The phases in the order first reported, without the fetch's own."""
    fetching = {"verifying", "extracting", "downloading", "waiting for another worker"}
    return [phase for phase in dict.fromkeys(e[0] for e in events) if phase not in fetching]


def test_the_build_command_reports_each_step_counted(tiny: Settings) -> None:
    events: list[Event] = []
    manifest = build_snapshot(tiny, ["original", "popularity"], None, lambda *e: events.append(e))
    assert phases(events) == [
        "loading ratings",
        "building the rating matrix",
        "fitting original",
        "fitting popularity",
        "writing the snapshot",
        "done",
    ]
    counted = [e for e in events if e[0] not in {"verifying", "extracting"}]
    assert [done for _, done, _ in counted] == [0, 1, 2, 3, 4, 5]
    assert {total for _, _, total in counted} == {5}
    assert set(manifest.phases) == {"load", "matrix"}
    assert manifest.bytes > 0 and manifest.ratings == 11


async def test_a_first_start_writes_the_matrix_alone_with_the_same_steps(tiny: Settings) -> None:
    events: list[Event] = []
    model = await build_model(tiny, lambda *e: events.append(e), threading.Event())
    assert phases(events) == [
        "loading ratings",
        "building the rating matrix",
        "writing the snapshot",
    ]
    # The server's steps have no count: its status page shows them without a bar.
    assert {(done, total) for phase, done, total in events if phase in phases(events)} == {
        (0, None)
    }
    assert model.manifest is not None and model.manifest.fits == ()
    assert set(model.manifest.phases) == {"load", "matrix"} and model.manifest.bytes > 0
    assert model.path == snapshot_path(tiny, "ml-tiny") and not model.from_snapshot
    assert list(model.algorithms) == ["original"]


async def test_the_next_start_maps_what_the_build_command_wrote(tiny: Settings) -> None:
    # `movierec build` runs its own event loop: here, in a thread beside the test's.
    written = await asyncio.to_thread(
        build_snapshot, tiny, ["original", "popularity"], None, lambda *e: None
    )
    events: list[Event] = []
    model = await build_model(tiny, lambda *e: events.append(e), threading.Event())
    assert model.manifest == written and model.from_snapshot
    assert sorted(model.algorithms) == ["original", "popularity"]
    assert "loading ratings" not in phases(events)


async def test_a_snapshot_that_cannot_be_written_serves_from_memory(tiny: Settings) -> None:
    # A folder where the snapshot file should go: the rename into place fails.
    path = snapshot_path(tiny, "ml-tiny")
    (path / "in the way").mkdir(parents=True)
    model = await build_model(tiny, lambda *e: None, threading.Event())
    assert model.path is None and model.manifest is None and not model.from_snapshot
    assert model.matrix.nnz == 11
    assert not list(path.parent.glob(".*.part"))
