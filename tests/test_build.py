"""`movierec build` writes one complete snapshot; servers map it, fit nothing, and switch to a
newer one while serving."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import app.__main__ as cli
from app.config import ALL_ALGORITHMS, Settings
from app.engine import Availability, Service
from app.engine.build import build_snapshot, map_snapshot, new_algorithm
from app.engine.manifest import Manifest
from app.recommender import ALGORITHMS
from tests import live
from tests.conftest import TINY_MOVIES, TINY_RATINGS, make_zip
from tests.live import get_json

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


async def started(settings: Settings) -> Service:
    """A started Service with its model served."""
    service = Service(settings)
    service.start()
    await service.loaded(60)
    assert service.ready, service.status
    return service


async def test_a_server_on_a_complete_snapshot_builds_nothing(every: Settings) -> None:
    # `movierec build` runs its own event loop: here, in a thread beside the test's.
    built = await asyncio.to_thread(build_snapshot, every, list(ALGORITHMS), None, quiet)
    expected = {
        name: await asyncio.to_thread(fit_and_recommend, every, name, user_id=1, n=3, k=2)
        for name in ALGORITHMS
    }
    for attempt in ("first worker", "second worker", "after a restart"):
        service = await started(every)
        assert {a.availability for a in service.algorithms()} == {Availability.READY}, attempt
        # The snapshot served is the one the build job wrote: no build of its own.
        assert service.status.snapshot_id == built.build_id, attempt
        # What the snapshot holds answers exactly as a fit made here would.
        for name in ALGORITHMS:
            mapped = (await service.recommend(1, n=3, k=2, algorithm=name)).value
            assert [m.movie_id for m in mapped.movies] == expected[name], name
        await service.stop()


def fit_and_recommend(settings: Settings, name: str, user_id: int, n: int, k: int) -> list[int]:
    """The films `name`, fitted here on the release itself, recommends to `user_id`."""
    fresh = settings.replace(data_dir=settings.data_dir.with_name("fresh"))
    build_snapshot(fresh, ["original"], None, quiet)
    model = map_snapshot(fresh, fresh.data_dir / "snapshots" / "ml-tiny.snapshot", {})
    algorithm = new_algorithm(settings, name).fit(model.matrix)
    answer = model.recommend(algorithm, model.profile_of(user_id), user_id=user_id, n=n, k=k)
    return [m.movie_id for m in answer.movies]


async def test_a_snapshot_built_from_new_data_is_switched_to_without_a_restart(
    every: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(build_snapshot, every, list(ALGORITHMS), None, quiet)
    service = await started(every)
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
    await service.stop()


async def test_without_a_complete_snapshot_a_child_process_builds_one(every: Settings) -> None:
    first = await started(every)
    assert {a.name for a in first.algorithms() if a.availability is Availability.READY} == {
        "original"
    }
    assert first.status.snapshot_algorithms == ()  # the matrix alone, written by this server
    await first.settled()  # the child's snapshot, mapped by the watcher
    assert {a.availability for a in first.algorithms()} == {Availability.READY}
    assert first.status.snapshot_algorithms == tuple(ALGORITHMS)
    child_built = first.status.snapshot_id
    # A second worker maps the child's snapshot: no second build.
    second = await started(every)
    await second.settled()
    assert second.status.snapshot_id == child_built
    for service in (first, second):
        await service.stop()
    # A fit made with other settings is not taken from the snapshot: it is built again.
    other = await started(every.replace(ease_memory_budget=100 << 20))
    ease = next(a for a in other.algorithms() if a.name == "ease")
    assert ease.availability is Availability.PREPARING
    await other.settled()
    assert {a.availability for a in other.algorithms()} == {Availability.READY}
    assert other.status.snapshot_id != child_built
    await other.stop()


async def test_a_failed_child_build_is_retried_and_post_retry_starts_one_at_once(
    every: Settings,
) -> None:
    service = await started(every.replace(retry_backoff=60.0))
    path = every.data_dir / "snapshots" / "ml-tiny.snapshot"
    # DATA_DIR cannot take the child's snapshot: a folder stands where it must be renamed.
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)
    await service.settled()
    ease = next(a for a in service.algorithms() if a.name == "ease")
    assert ease.availability is Availability.UNAVAILABLE and "build failed" in ease.reason
    assert service.status.snapshot_algorithms == ()
    # Freed again; the next try is a minute away, but a retry starts it now.
    (path / "in-the-way").rmdir()
    path.rmdir()
    service.retry()
    ease = next(a for a in service.algorithms() if a.name == "ease")
    assert ease.availability is Availability.PREPARING
    await service.settled()
    assert {a.availability for a in service.algorithms()} == {Availability.READY}
    assert service.status.snapshot_algorithms == tuple(ALGORITHMS)
    await service.stop()


async def test_a_failed_child_build_is_retried_by_itself_after_a_pause(every: Settings) -> None:
    service = await started(every.replace(retry_backoff=0.5))
    path = every.data_dir / "snapshots" / "ml-tiny.snapshot"
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)
    await service.settled()
    assert {a.availability for a in service.algorithms() if a.name != "original"} == {
        Availability.UNAVAILABLE
    }
    (path / "in-the-way").rmdir()
    path.rmdir()
    deadline = time.monotonic() + 60
    while service.status.snapshot_algorithms != tuple(ALGORITHMS):
        assert time.monotonic() < deadline, "the failed build was not tried again"
        await asyncio.sleep(0.1)
    assert {a.availability for a in service.algorithms()} == {Availability.READY}
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


def wait_for_answers(answered: Callable[[], int], more: int, timeout: float = 30) -> int:
    """Wait until the load has had `more` answers from now; how many there were before."""
    start = answered()
    deadline = time.monotonic() + timeout
    while answered() < start + more:
        assert time.monotonic() < deadline, "the load got no answers"
        time.sleep(0.05)
    return start


def test_a_new_snapshot_is_picked_up_under_load_without_a_failed_request(
    every: Settings,
) -> None:
    build_snapshot(every, ["original", "popularity"], None, quiet)
    server = live.start(
        every.source,
        every.data_dir.parent,
        DATA_DIR=str(every.data_dir),
        WORKERS="2",
        ALGORITHMS="original,popularity",
    )
    base = server.url("")
    try:
        # Each new connection may reach either worker: both must be ready before the load.
        server.wait_ready(timeout=30)
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
        served_before = wait_for_answers(lambda: answered, 20)
        after = build_snapshot(every, ["original", "popularity"], None, quiet).build_id
        assert after != before
        # Each new connection may reach either worker: all must serve the new snapshot.
        live.until(
            lambda: all(
                get_json(f"{base}/api/status")[1].get("snapshot_id") == after for _ in range(10)
            ),
            10,
            "the workers did not switch",
        )
        wait_for_answers(lambda: answered, 20)  # and more after the switch
        stop.set()
        for client in clients:
            client.join(timeout=10)
        assert answered > served_before + 20 and failures == []
    finally:
        server.stop()
