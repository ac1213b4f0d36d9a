"""Choosing an algorithm: the engine fits them in the background, the page and API offer them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from app.config import ALL_ALGORITHMS, Settings
from app.recommender import ALGORITHMS, DEFAULT_ALGORITHM
from app.recommender.ease import EASE
from app.service import AlgorithmUnavailable, Availability, Engine
from tests.conftest import wait_until_settled


@pytest.fixture
def every(settings: Settings, tiny_zip: Path) -> Settings:
    """The tiny release with every algorithm enabled."""
    return settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS)


async def fitted(settings: Settings) -> Engine:
    engine = Engine(settings)
    await engine.build()
    assert engine._fits is not None
    await engine._fits
    return engine


async def test_the_original_serves_while_the_others_are_prepared(every: Settings) -> None:
    engine = Engine(every)
    await engine.build()
    # The fits run in a background task that has not had a turn yet.
    statuses = {a.name: a.availability for a in engine.algorithms()}
    assert statuses["original"] is Availability.READY
    assert statuses[DEFAULT_ALGORITHM] is Availability.PREPARING
    with pytest.raises(AlgorithmUnavailable, match="still being prepared"):
        engine.recommend(1, algorithm=DEFAULT_ALGORITHM)
    interim = engine.recommend(1, n=3, k=2)
    assert interim.algorithm == "original" and "still being prepared" in interim.note
    assert engine._fits is not None
    await engine._fits
    assert {a.availability for a in engine.algorithms()} == {Availability.READY}
    answer = engine.recommend(1, n=3, k=2)
    assert answer.algorithm == DEFAULT_ALGORITHM and answer.note == ""


async def test_an_algorithm_too_large_for_the_data_is_left_out(
    every: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EASE, "estimate_bytes", lambda self, matrix: 1 << 50)
    engine = await fitted(every)
    ease = next(a for a in engine.algorithms() if a.name == "ease")
    assert ease.availability is Availability.UNAVAILABLE and "GiB" in ease.reason
    with pytest.raises(AlgorithmUnavailable, match="not available"):
        engine.recommend(1, algorithm="ease")
    answer = engine.recommend(1, n=3)
    assert answer.algorithm == "itemknn" and "not available here" in answer.note


async def test_disabled_algorithms_say_so_and_the_original_answers_plainly(
    settings: Settings, tiny_zip: Path
) -> None:
    engine = await fitted(settings.replace(source=str(tiny_zip), algorithms=("original",)))
    listed = {a.name: a for a in engine.algorithms()}
    assert listed["itemknn"].availability is Availability.UNAVAILABLE
    assert "ALGORITHMS" in listed["itemknn"].reason
    answer = engine.recommend(1, n=3, k=2)
    assert answer.algorithm == "original" and answer.note == ""


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_every_algorithm_answers_with_reasons(every: Settings, name: str) -> None:
    engine = await fitted(every)
    answer = engine.recommend(1, n=3, k=3, algorithm=name)
    assert answer.algorithm == name and answer.label
    rated = {10, 20}  # user 1's films
    assert not rated & {m.movie_id for m in answer.movies}
    for movie in answer.movies:
        for reason in movie.reasons:
            if reason.kind == "movie":
                assert reason.id in rated and reason.title in (
                    "Toy Story",
                    "American President, The",
                )
            elif reason.kind == "user":
                assert reason.id in {n.user_id for n in answer.neighbours}


async def test_reasons_of_the_original_are_its_neighbours_ratings(every: Settings) -> None:
    engine = await fitted(every)
    answer = engine.recommend(1, n=3, k=2, algorithm="original")
    # Neighbours 2 and 3 (see test_recommender): 30 from user 2, 50 and 40 from user 3.
    assert [[(r.kind, r.id, r.rating) for r in m.reasons] for m in answer.movies] == [
        [("user", 2, 5.0)],
        [("user", 3, 4.0)],
        [("user", 3, 2.0)],
    ]
    assert [m.neighbours_rated for m in answer.movies] == [1, 1, 1]


async def test_item_based_reasons_name_the_films_rated(every: Settings) -> None:
    engine = await fitted(every)
    answer = engine.recommend(1, n=3, algorithm="itemknn")
    assert answer.neighbours == () and all(m.neighbours_rated is None for m in answer.movies)
    reasons = [r for m in answer.movies for r in m.reasons]
    assert reasons and {r.kind for r in reasons} == {"movie"}


async def test_k_is_part_of_the_cache_key_only_where_it_matters(every: Settings) -> None:
    engine = await fitted(every)
    assert engine.recommend(1, n=3, k=1, algorithm="itemknn") is engine.recommend(
        1, n=3, k=7, algorithm="itemknn"
    )
    assert engine.recommend(1, n=3, k=1, algorithm="original") != engine.recommend(
        1, n=3, k=3, algorithm="original"
    )


@pytest.fixture
async def every_client(every: Settings):  # type: ignore[no-untyped-def]
    app = create_app(every)
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        await app.extensions["engine"]._fits
        yield test_app.test_client()


async def test_the_api_lists_the_algorithms(every_client) -> None:  # type: ignore[no-untyped-def]
    body = await (await every_client.get("/api/algorithms")).get_json()
    assert body["default"] == DEFAULT_ALGORITHM
    assert [a["name"] for a in body["algorithms"]] == list(ALGORITHMS)
    assert {a["availability"] for a in body["algorithms"]} == {"ready"}


async def test_the_api_takes_an_algorithm(every_client) -> None:  # type: ignore[no-untyped-def]
    response = await every_client.get("/api/users/1/recommendations?n=3&k=2&algorithm=original")
    body = await response.get_json()
    assert response.status_code == 200 and body["algorithm"] == "original"
    assert [m["movie_id"] for m in body["recommendations"]] == [30, 50, 40]
    assert body["recommendations"][0]["reasons"] == [
        {
            "kind": "user",
            "id": 2,
            "title": None,
            "similarity": pytest.approx(29 / (34 * 50) ** 0.5),
            "rating": 5.0,
        }
    ]
    default = await (await every_client.get("/api/users/1/recommendations")).get_json()
    assert default["algorithm"] == DEFAULT_ALGORITHM


@pytest.mark.parametrize("value", ["bogus", "ORIGINAL;drop", "é"])
async def test_an_unknown_algorithm_is_a_400(every_client, value: str) -> None:  # type: ignore[no-untyped-def]
    response = await every_client.get(
        "/api/users/1/recommendations", query_string={"algorithm": value}
    )
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["field"] == "algorithm"
    assert "original" in body["error"]["message"]
    page = await every_client.get("/", query_string={"user_id": "1", "algorithm": value})
    assert page.status_code == 400 and "Unknown algorithm" in await page.get_data(as_text=True)


async def test_a_disabled_algorithm_is_a_503_with_the_reason(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/api/users/1/recommendations?algorithm=ease")
    body = await response.get_json()
    assert response.status_code == 503 and "ALGORITHMS" in body["error"]["message"]
    page = await client.get("/?user_id=1&algorithm=ease", headers={"HX-Request": "true"})
    assert page.status_code == 503 and "not available" in await page.get_data(as_text=True)


async def test_the_form_offers_every_algorithm_and_keeps_the_choice(every_client) -> None:  # type: ignore[no-untyped-def]
    html = await (await every_client.get("/?user_id=1&algorithm=popularity")).get_data(as_text=True)
    for name in ALGORITHMS:
        assert f'<option value="{name}"' in html
    assert '<option value="popularity" selected>' in html
    assert "Rated by" in html and "% of users" in html  # the popularity reason


async def test_the_about_page_shows_the_published_evaluation(every_client) -> None:  # type: ignore[no-untyped-def]
    html = await (await every_client.get("/about")).get_data(as_text=True)
    assert "Latest offline evaluation" in html and "ml-latest-small" in html
    assert "by the developers" in html and 'class="is-default"' in html


async def test_the_about_page_prefers_this_servers_evaluation(
    every_client, every: Settings
) -> None:  # type: ignore[no-untyped-def]
    from app.evaluation.report import PUBLISHED

    report = json.loads(PUBLISHED.read_text())
    report["dataset"]["name"] = "my-own-release"
    folder = every.data_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report))
    html = await (await every_client.get("/about")).get_data(as_text=True)
    assert "my-own-release" in html and "by the developers" not in html
    (folder / "latest.json").write_text("{not json")
    html = await (await every_client.get("/about")).get_data(as_text=True)
    assert "ml-latest-small" in html


async def test_a_repeated_fragment_is_served_from_the_cache_until_the_model_changes(
    every: Settings,
) -> None:
    app = create_app(every)
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        engine = app.extensions["engine"]
        await engine._fits
        client = test_app.test_client()
        headers = {"HX-Request": "true"}
        path = "/?user_id=1&n=3&k=2&algorithm=original"
        first = await (await client.get(path, headers=headers)).get_data()
        assert len(app.extensions["fragments"]) == 1
        engine._model.algorithms["original"].rank = None  # a second render would fail
        assert await (await client.get(path, headers=headers)).get_data() == first
        await engine.build()  # a new model: new generation, nothing fitted but the original
        default = await (await client.get("/?user_id=1&n=3&k=2", headers=headers)).get_data()
        assert b"still being prepared" in default
        assert len(app.extensions["fragments"]) == 2
        # An error is rendered each time and never cached.
        await client.get("/?user_id=999&n=3", headers=headers)
        assert len(app.extensions["fragments"]) == 2
