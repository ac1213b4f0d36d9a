"""The Service: load states, the answer assembled, start/stop, retries, the answer cache."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from app.config import ALL_ALGORITHMS, Settings
from app.engine import Availability, NotReady, Service, State
from app.engine.build import build_snapshot
from tests.conftest import DatasetServer


async def built(settings: Settings) -> Service:
    """A started Service whose model is served (or whose load failed)."""
    service = Service(settings)
    service.start()
    await service.loaded(60)
    return service


async def test_build_makes_the_engine_ready(settings: Settings, tiny_zip: Path) -> None:
    service = Service(settings.replace(source=str(tiny_zip)))
    with pytest.raises(NotReady):
        await service.recommend(1)
    service.start()
    await service.loaded(60)
    status = service.status
    assert service.ready and status.state is State.READY
    assert (status.users, status.movies, status.ratings) == (4, 5, 11)
    assert status.user_id_range == (1, 4) and status.seconds_to_ready is not None


async def test_answer_joins_titles_and_averages(settings: Settings, tiny_zip: Path) -> None:
    service = await built(settings.replace(source=str(tiny_zip)))
    answer = (await service.recommend(1, n=3, k=2)).value
    heat = answer.movies[0]
    assert (heat.movie_id, heat.title, heat.year, heat.genres) == (
        30,
        "Heat",
        1995,
        ("Action", "Crime", "Thriller"),
    )
    assert heat.avg_rating == pytest.approx(3.0) and heat.ratings_count == 2
    assert [m.movie_id for m in answer.movies] == [30, 50, 40]
    assert answer.movies[1].year is None  # "Babylon 5" has no year
    assert [n.user_id for n in answer.neighbours] == [2, 3]
    assert [n.user_id for n in await service.similar_users(4, k=1)] == [3]  # 20/sqrt(27*45)


async def test_failure_is_recorded_not_raised(settings: Settings) -> None:
    service = await built(settings)  # the source does not exist
    status = service.status
    assert status.state is State.FAILED and not service.ready
    assert "neither an http(s) URL" in status.error and "MOVIELENS_SOURCE" in status.hint
    with pytest.raises(NotReady, match="neither"):
        await service.recommend(1)


async def test_start_runs_one_build_and_stop_cancels_it(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    started, finish = asyncio.Event(), asyncio.Event()

    async def never_finishes(request: web.Request) -> web.StreamResponse:
        started.set()
        await finish.wait()
        return web.Response()

    service = Service(settings.replace(source=dataset_server.serve("/ml.zip", never_finishes)))
    service.start()
    service.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    assert dataset_server.hits["/ml.zip"] == 1
    assert service.status.state is State.LOADING
    await asyncio.wait_for(service.stop(), 5)
    assert not service.ready
    finish.set()


async def test_a_rated_movie_missing_from_movies_csv_keeps_its_id(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import TINY_MOVIES, TINY_RATINGS, make_zip

    path = tmp_path / "extra.zip"
    path.write_bytes(
        make_zip({"ratings.csv": TINY_RATINGS + "2,70,4.5,964982931\n", "movies.csv": TINY_MOVIES})
    )
    service = await built(settings.replace(source=str(path)))
    movies = {m.movie_id: m for m in (await service.recommend(1, n=10, k=3)).value.movies}
    assert sorted(movies) == [30, 40, 50, 70]  # every film user 1 has not rated
    extra = movies[70]
    assert (extra.title, extra.year, extra.genres, extra.ratings_count) == ("Movie 70", None, (), 1)
    assert movies[30].title == "Heat"


async def newer_snapshot(service: Service) -> None:
    """Publish a newer snapshot of the same data, as a build job would, and wait for the switch."""
    before = service.status.snapshot_id
    await asyncio.to_thread(build_snapshot, service.settings, ["original"], None, quiet)
    deadline = time.monotonic() + 10
    while service.status.snapshot_id == before:
        assert time.monotonic() < deadline, "the service did not switch to the newer snapshot"
        await asyncio.sleep(0.05)


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def snapshots(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "snapshots").glob("*.snapshot"))


async def test_the_first_build_writes_a_snapshot_the_next_one_maps(
    settings: Settings, tiny_zip: Path
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    first = await built(settings)
    assert [p.name for p in snapshots(settings)] == ["ml-tiny.snapshot"]
    assert not [p for p in (settings.data_dir / "snapshots").iterdir() if ".part" in p.name]
    second = await built(settings)
    # The same snapshot, mapped: not built again from the CSV files.
    assert second.status.snapshot_id == first.status.snapshot_id != ""
    assert (await second.recommend(1, n=3, k=2)).value == (await first.recommend(1, n=3, k=2)).value
    assert second.status.ratings == 11 and second.status.users == 4


async def test_a_damaged_snapshot_is_rebuilt(settings: Settings, tiny_zip: Path) -> None:
    settings = settings.replace(source=str(tiny_zip))
    first = await built(settings)
    await first.stop()
    [path] = snapshots(settings)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in the last array
    path.write_bytes(bytes(data))
    service = await built(settings)
    assert service.status.snapshot_id != first.status.snapshot_id  # built again
    answer = (await service.recommend(1, n=3, k=2)).value
    assert service.ready and [m.movie_id for m in answer.movies] == [30, 50, 40]
    assert path.read_bytes() != bytes(data)


async def test_a_changed_release_makes_the_snapshot_stale(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import TINY_MOVIES, TINY_RATINGS

    folder = tmp_path / "ml-folder"
    folder.mkdir()
    (folder / "movies.csv").write_text(TINY_MOVIES)
    (folder / "ratings.csv").write_text(TINY_RATINGS)
    settings = settings.replace(source=str(folder))
    await (await built(settings)).stop()
    (folder / "ratings.csv").write_text(TINY_RATINGS + "5,60,4.0,964982931\n")
    service = await built(settings)
    assert service.status.users == 5 and service.status.ratings == 12


async def test_an_unwritable_snapshot_folder_still_serves(
    settings: Settings, tiny_zip: Path
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "snapshots").mkdir()
    (settings.data_dir / "snapshots" / "ml-tiny.snapshot").mkdir()  # a folder in the way
    service = await built(settings)
    assert service.ready and service.status.snapshot_id == ""  # served from memory


async def test_answers_are_cached_until_the_model_changes(
    settings: Settings, tiny_zip: Path
) -> None:
    service = await built(settings.replace(source=str(tiny_zip), result_cache=2))
    assert service.cache_info().entries == 0
    first = (await service.recommend(1, n=3, k=2)).value
    again = (await service.recommend(1, n=3, k=2)).value
    assert again is first
    assert (service.cache_info().hits, service.cache_info().misses) == (1, 1)
    await service.recommend(2, n=3, k=2)
    await service.recommend(3, n=3, k=2)  # the cache holds two answers: user 1's goes
    assert service.cache_info().entries == 2
    third = (await service.recommend(3, n=3, k=2)).value
    assert service.cache_info().hits == 2  # user 3's is still there
    assert (await service.recommend(1, n=3, k=2)).value is not first
    assert service.cache_info().misses == 4  # user 1's had gone
    await newer_snapshot(service)  # a new model: nothing from the old one is served
    assert (await service.recommend(3, n=3, k=2)).value is not third
    assert (service.cache_info().hits, service.cache_info().misses) == (2, 5)


async def test_a_zero_sized_cache_keeps_nothing(settings: Settings, tiny_zip: Path) -> None:
    service = await built(settings.replace(source=str(tiny_zip), result_cache=0))
    first = (await service.recommend(1, n=3, k=2)).value
    assert (await service.recommend(1, n=3, k=2)).value is not first
    info = service.cache_info()
    assert (info.entries, info.capacity, info.hits) == (0, 0, 0)


async def test_without_a_snapshot_the_other_algorithms_say_why_they_are_unavailable(
    settings: Settings, tiny_zip: Path
) -> None:
    every = settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS)
    (every.data_dir / "snapshots" / "ml-tiny.snapshot").mkdir(parents=True)  # in the way
    service = await built(every)
    await service.settled(10)  # nothing is built in the server's threads: nothing to wait for
    listed = {a.name: a for a in service.algorithms()}
    assert listed["original"].availability is Availability.READY
    ease = listed["ease"]
    assert ease.availability is Availability.UNAVAILABLE and "movierec build" in ease.reason
    answer = (await service.recommend(1, n=3, k=2)).value
    assert answer.algorithm == "original" and "not available here" in answer.note
    await service.stop()


async def test_loaded_and_settled_wait_for_the_model(settings: Settings, tiny_zip: Path) -> None:
    service = Service(settings.replace(source=str(tiny_zip)))
    with pytest.raises(TimeoutError):
        await service.loaded(0.05)  # not started: nothing arrives
    service.start()
    started = time.monotonic()
    await service.loaded(30)
    assert service.ready and time.monotonic() - started < 5
    await service.settled(0.05)  # only the original is enabled: settled once loaded
    await service.stop()
