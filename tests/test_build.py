"""`movierec build` writes one complete snapshot; servers map it, fit nothing, and switch to a
newer one while serving."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import app.__main__ as cli
from app.config import ALL_ALGORITHMS, Settings
from app.engine import Availability, Service
from app.engine.build import build_snapshot, map_snapshot, new_algorithm
from app.engine.manifest import Manifest
from app.recommender import ALGORITHMS
from tests.conftest import TINY_MOVIES, TINY_RATINGS, make_zip
from tests.live import free_port, get_json

ROOT = Path(__file__).resolve().parents[1]


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def read_manifest(settings: Settings, path: Path) -> Manifest:
    """The manifest of the snapshot at `path`, read as a server maps it."""
    manifest = map_snapshot(settings, path, {}).manifest
    assert manifest is not None
    return manifest


@pytest.fixture
def every(settings: Settings, tiny_zip: Path) -> Settings:
    """The tiny release with every algorithm enabled."""
    return settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS)


def test_build_writes_every_fitted_algorithm_with_a_manifest(every: Settings) -> None:
    manifest = build_snapshot(every, list(ALGORITHMS), None, quiet)
    assert [fit.name for fit in manifest.fits] == list(ALGORITHMS)
    assert all(not fit.reason for fit in manifest.fits)
    fits = {fit.name: fit for fit in manifest.fits}
    assert fits["ease"].params["memory_budget"] == every.ease_memory_budget
    assert fits["itemknn"].bytes > 0 and fits["itemknn"].params["neighbours"] == 50
    assert manifest.ratings == 11 and manifest.release == "ml-tiny"
    written = read_manifest(every, every.data_dir / "snapshots" / "ml-tiny.snapshot")
    assert written == manifest


async def test_a_server_on_a_complete_snapshot_fits_nothing(every: Settings) -> None:
    # `movierec build` runs its own event loop: here, in a thread beside the test's.
    await asyncio.to_thread(build_snapshot, every, list(ALGORITHMS), None, quiet)
    for attempt in ("first worker", "second worker", "after a restart"):
        service = Service(every)
        await service.engine.build()
        assert {a.availability for a in service.algorithms()} == {Availability.READY}, attempt
        await service.fits_done()
        assert (service.engine.fits_run, service.engine.builds_started) == (0, 0), attempt
        # What the snapshot holds answers exactly as a fit made here would.
        model = service.engine.model
        for name in ALGORITHMS:
            fitted_here = new_algorithm(every, name).fit(model.matrix)
            expected = model.recommend(fitted_here, model.profile_of(1), user_id=1, n=3, k=2)
            mapped = (await service.recommend(1, n=3, k=2, algorithm=name)).value
            assert mapped == expected, name
        await service.stop()


async def test_a_snapshot_built_from_new_data_is_switched_to_without_a_restart(
    every: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(build_snapshot, every, list(ALGORITHMS), None, quiet)
    service = Service(every)
    await service.engine.build()
    before = service.status
    first = (await service.recommend(1, n=3, k=2, algorithm="popularity")).value
    # A build job elsewhere publishes the same release from a new download: user 5 joins
    # and makes film 60, unrated so far, the most rated.
    newer = tmp_path / "newer" / "ml-tiny.zip"
    newer.parent.mkdir()
    extra = "".join(f"{user},60,4.5,964990000\n" for user in (2, 3, 4, 5))
    newer.write_bytes(
        make_zip(
            {
                "ratings.csv": TINY_RATINGS + extra + "5,10,4.0,964990001\n",
                "movies.csv": TINY_MOVIES,
            }
        )
    )
    await asyncio.to_thread(
        build_snapshot, every.replace(source=str(newer)), list(ALGORITHMS), None, quiet
    )
    deadline = time.monotonic() + 10
    while service.status.snapshot_id == before.snapshot_id:
        assert time.monotonic() < deadline, "the server did not switch"
        await asyncio.sleep(0.1)
    after = service.status
    assert (after.ratings, after.users) == (before.ratings + 5, before.users + 1)
    assert after.user_id_range == (1, 5)
    assert after.snapshot_algorithms == tuple(ALGORITHMS)
    again = (await service.recommend(1, n=3, k=2, algorithm="popularity")).value
    assert 60 not in [m.movie_id for m in first.movies] and again.movies[0].movie_id == 60
    assert service.engine.fits_run == 0
    await service.stop()


async def test_without_a_complete_snapshot_a_child_process_builds_one(every: Settings) -> None:
    first = Service(every)
    await first.engine.build()
    assert {a.name for a in first.algorithms() if a.availability is Availability.READY} == {
        "original"
    }
    await first.fits_done()  # the child's snapshot, mapped by the watcher
    assert {a.availability for a in first.algorithms()} == {Availability.READY}
    assert (first.engine.builds_started, first.engine.fits_run) == (1, 0)
    assert first.status.snapshot_algorithms == tuple(ALGORITHMS)
    # A fit made with other settings is not taken from the snapshot: it is built again.
    other = Service(every.replace(ease_memory_budget=100 << 20))
    await other.engine.build()
    ease = next(a for a in other.algorithms() if a.name == "ease")
    assert ease.availability is Availability.PREPARING
    await other.fits_done()
    assert other.engine.builds_started == 1
    for service in (first, other):
        await service.stop()


def test_the_build_command_prints_its_table_and_a_dry_run_fits_nothing(
    every: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOVIELENS_SOURCE", every.source)
    monkeypatch.setenv("DATA_DIR", str(every.data_dir))
    assert cli.main(["build", "--dry-run"]) == 0
    assert "co-rated pairs" in capsys.readouterr().out
    assert not (every.data_dir / "snapshots" / "ml-tiny.snapshot").exists() or (
        read_manifest(every, every.data_dir / "snapshots" / "ml-tiny.snapshot").fits == ()
    )
    out = every.data_dir / "published"
    assert cli.main(["build", "--algorithms", "original,ease", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| ease" in printed and "l2=2500.0" in printed
    assert [fit.name for fit in read_manifest(every, out / "ml-tiny.snapshot").fits] == [
        "original",
        "ease",
    ]


def test_a_new_snapshot_is_picked_up_under_load_without_a_failed_request(
    every: Settings,
) -> None:
    build_snapshot(every, ["original", "popularity"], None, quiet)
    port = free_port()
    env = {
        **os.environ,
        "MOVIELENS_SOURCE": every.source,
        "DATA_DIR": str(every.data_dir),
        "PORT": str(port),
        "WORKERS": "2",
        "ALGORITHMS": "original,popularity",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Each new connection may reach either worker: both must be ready before the load.
        deadline = time.monotonic() + 30
        while not all(get_json(f"{base}/readyz")[0] == 200 for _ in range(10)):
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.1)
        before = get_json(f"{base}/api/status")[1]["snapshot_id"]
        failures: list[int] = []
        answered = 0
        stop = threading.Event()

        def load() -> None:
            nonlocal answered
            while not stop.is_set():
                status, _ = get_json(f"{base}/api/users/1/recommendations?algorithm=popularity")
                answered += 1
                if status != 200:
                    failures.append(status)

        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(0.5)
        build_snapshot(every, ["original", "popularity"], None, quiet)
        after = read_manifest(every, every.data_dir / "snapshots" / "ml-tiny.snapshot").build_id
        assert after != before
        # Each new connection may reach either worker: all must serve the new snapshot.
        switched = time.monotonic() + 10
        while not all(
            get_json(f"{base}/api/status")[1].get("snapshot_id") == after for _ in range(10)
        ):
            assert time.monotonic() < switched, "the workers did not switch"
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for client in clients:
            client.join(timeout=10)
        assert answered > 20 and failures == []
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=15)
