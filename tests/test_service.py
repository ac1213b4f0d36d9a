"""The Engine: build states, the answer it assembles, start/stop semantics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from app.config import Settings
from app.service import Engine, NotReady, State
from tests.conftest import DatasetServer


async def test_build_makes_the_engine_ready(settings: Settings, tiny_zip: Path) -> None:
    engine = Engine(settings.replace(source=str(tiny_zip)))
    with pytest.raises(NotReady):
        engine.recommend(1)
    await engine.build()
    status = engine.status
    assert engine.ready and status.state is State.READY
    assert (status.users, status.movies, status.ratings) == (4, 5, 11)
    assert status.user_id_range == (1, 4) and status.seconds_to_ready is not None


async def test_answer_joins_titles_and_averages(settings: Settings, tiny_zip: Path) -> None:
    engine = Engine(settings.replace(source=str(tiny_zip)))
    await engine.build()
    answer = engine.recommend(1, n=3, k=2)
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
    assert [n.user_id for n in engine.similar_users(4, k=1)] == [3]  # 20/sqrt(27*45)


async def test_failure_is_recorded_not_raised(settings: Settings) -> None:
    engine = Engine(settings)  # the source does not exist
    await engine.build()
    status = engine.status
    assert status.state is State.FAILED and not engine.ready
    assert "neither an http(s) URL" in status.error and "MOVIELENS_SOURCE" in status.hint
    with pytest.raises(NotReady, match="neither"):
        engine.recommend(1)


async def test_start_runs_one_build_and_stop_cancels_it(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    started, finish = asyncio.Event(), asyncio.Event()

    async def never_finishes(request: web.Request) -> web.StreamResponse:
        started.set()
        await finish.wait()
        return web.Response()

    engine = Engine(settings.replace(source=dataset_server.serve("/ml.zip", never_finishes)))
    engine.start()
    engine.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    assert dataset_server.hits["/ml.zip"] == 1
    assert engine.status.state is State.LOADING
    await asyncio.wait_for(engine.stop(), 5)
    assert not engine.ready
    finish.set()


async def test_a_rated_movie_missing_from_movies_csv_keeps_its_id(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import TINY_MOVIES, TINY_RATINGS, make_zip

    path = tmp_path / "extra.zip"
    path.write_bytes(
        make_zip({"ratings.csv": TINY_RATINGS + "2,70,4.5,964982931\n", "movies.csv": TINY_MOVIES})
    )
    engine = Engine(settings.replace(source=str(path)))
    await engine.build()
    movies = {m.movie_id: m for m in engine.recommend(1, n=10, k=3).movies}
    assert sorted(movies) == [30, 40, 50, 70]  # every film user 1 has not rated
    extra = movies[70]
    assert (extra.title, extra.year, extra.genres, extra.ratings_count) == ("Movie 70", None, (), 1)
    assert movies[30].title == "Heat"


def snapshots(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "snapshots").glob("*.snapshot"))


async def test_the_first_build_writes_a_snapshot_the_next_one_maps(
    settings: Settings, tiny_zip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    first = Engine(settings)
    await first.build()
    assert [p.name for p in snapshots(settings)] == ["ml-tiny.snapshot"]
    assert not [p for p in (settings.data_dir / "snapshots").iterdir() if ".part" in p.name]
    caplog.set_level("INFO", logger="app.service")
    second = Engine(settings)
    await second.build()
    assert "from the snapshot" in caplog.text and "CSV" not in caplog.text.split("Model ready")[-1]
    assert second.recommend(1, n=3, k=2) == first.recommend(1, n=3, k=2)
    assert second.status.ratings == 11 and second.status.users == 4
    # Served from the mapping: read-only arrays, not a private copy.
    assert not second._require_model().knn.matrix.by_item.data.flags.writeable


async def test_a_damaged_snapshot_is_rebuilt(
    settings: Settings, tiny_zip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    await Engine(settings).build()
    [path] = snapshots(settings)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in the last array
    path.write_bytes(bytes(data))
    caplog.set_level("INFO", logger="app.service")
    engine = Engine(settings)
    await engine.build()
    assert "fails its checksum" in caplog.text
    assert engine.ready and [m.movie_id for m in engine.recommend(1, n=3, k=2).movies] == [
        30,
        50,
        40,
    ]
    assert path.read_bytes() != bytes(data)


async def test_a_changed_release_makes_the_snapshot_stale(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import TINY_MOVIES, TINY_RATINGS

    folder = tmp_path / "ml-folder"
    folder.mkdir()
    (folder / "movies.csv").write_text(TINY_MOVIES)
    (folder / "ratings.csv").write_text(TINY_RATINGS)
    settings = settings.replace(source=str(folder))
    await Engine(settings).build()
    (folder / "ratings.csv").write_text(TINY_RATINGS + "5,60,4.0,964982931\n")
    caplog.set_level("INFO", logger="app.service")
    engine = Engine(settings)
    await engine.build()
    assert "stale" in caplog.text
    assert engine.status.users == 5 and engine.status.ratings == 12


async def test_an_unwritable_snapshot_folder_still_serves(
    settings: Settings, tiny_zip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.replace(source=str(tiny_zip))
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "snapshots").mkdir()
    (settings.data_dir / "snapshots" / "ml-tiny.snapshot").mkdir()  # a folder in the way
    engine = Engine(settings)
    await engine.build()
    assert engine.ready and "serving from memory" in caplog.text


async def test_answers_are_cached_until_the_model_changes(
    settings: Settings, tiny_zip: Path
) -> None:
    engine = Engine(settings.replace(source=str(tiny_zip), result_cache=2))
    await engine.build()
    assert engine.cached(1, 3, 2) is None
    first = engine.recommend(1, n=3, k=2)
    assert engine.cached(1, 3, 2) is first and engine.recommend(1, n=3, k=2) is first
    engine.recommend(2, n=3, k=2)
    engine.recommend(3, n=3, k=2)  # the cache holds two answers: user 1's goes
    assert engine.cached(1, 3, 2) is None and engine.cached(3, 3, 2) is not None
    await engine.build()  # a new model starts with an empty cache
    assert engine.cached(3, 3, 2) is None


async def test_a_zero_sized_cache_keeps_nothing(settings: Settings, tiny_zip: Path) -> None:
    engine = Engine(settings.replace(source=str(tiny_zip), result_cache=0))
    await engine.build()
    engine.recommend(1, n=3, k=2)
    assert engine.cached(1, 3, 2) is None
