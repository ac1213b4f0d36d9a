"""Choosing an algorithm: a child build prepares them in the background, the page and API offer
them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Response
from quart.typing import TestClientProtocol as Client
from selectolax.lexbor import LexborHTMLParser

from app import create_app
from app.config import ALL_ALGORITHMS, Settings
from app.engine import AlgorithmUnavailable, Availability, Service
from app.engine.build import build_snapshot
from app.recommender import ALGORITHMS, DEFAULT_ALGORITHM, OriginalUserKNN
from tests.conftest import wait_until_settled


@pytest.fixture
def every(settings: Settings, tiny_zip: Path) -> Settings:
    """The tiny release with every algorithm enabled."""
    return settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS)


async def fitted(settings: Settings) -> Service:
    """A Service with its model built and every enabled algorithm fitted or left out."""
    service = Service(settings)
    service.start()
    await service.settled()
    return service


async def parsed(response: Response) -> LexborHTMLParser:
    """The response body as an HTML tree."""
    return LexborHTMLParser(await response.get_data(as_text=True))


async def test_the_original_serves_while_the_others_are_prepared(every: Settings) -> None:
    service = Service(every)
    service.start()
    await service.loaded()
    # The child build has only just started.
    statuses = {a.name: a.availability for a in service.algorithms()}
    assert statuses["original"] is Availability.READY
    assert statuses[DEFAULT_ALGORITHM] is Availability.PREPARING
    with pytest.raises(AlgorithmUnavailable, match="still being prepared"):
        await service.recommend(1, algorithm=DEFAULT_ALGORITHM)
    interim = (await service.recommend(1, n=3, k=2)).value
    assert interim.algorithm == "original" and "still being prepared" in interim.note
    await service.settled()
    assert {a.availability for a in service.algorithms()} == {Availability.READY}
    answer = (await service.recommend(1, n=3, k=2)).value
    assert answer.algorithm == DEFAULT_ALGORITHM and answer.note == ""


async def test_an_algorithm_too_large_for_the_data_is_left_out(every: Settings) -> None:
    # A budget too small for even the smallest useful EASE (24 bytes a cell: 2 x 2 films).
    service = await fitted(every.replace(ease_memory_budget=100))
    ease = next(a for a in service.algorithms() if a.name == "ease")
    assert ease.availability is Availability.UNAVAILABLE and "holds only 2 films" in ease.reason
    with pytest.raises(AlgorithmUnavailable, match="not available"):
        await service.recommend(1, algorithm="ease")
    answer = (await service.recommend(1, n=3)).value
    assert answer.algorithm == "itemknn" and "not available here" in answer.note


async def test_disabled_algorithms_say_so_and_the_original_answers_plainly(
    settings: Settings, tiny_zip: Path
) -> None:
    service = await fitted(settings.replace(source=str(tiny_zip), algorithms=("original",)))
    listed = {a.name: a for a in service.algorithms()}
    assert listed["itemknn"].availability is Availability.UNAVAILABLE
    assert "ALGORITHMS" in listed["itemknn"].reason
    answer = (await service.recommend(1, n=3, k=2)).value
    assert answer.algorithm == "original" and answer.note == ""


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_every_algorithm_answers_with_reasons(every: Settings, name: str) -> None:
    service = await fitted(every)
    answer = (await service.recommend(1, n=3, k=3, algorithm=name)).value
    assert answer.algorithm == name and answer.label
    rated = {10, 20}  # user 1's films
    assert not rated & {m.movie_id for m in answer.movies}
    for movie in answer.movies:
        for reason in movie.reasons:
            if reason.kind == "movie":
                assert reason.id in rated and reason.title in (
                    "Toy Story",
                    "The American President",  # shown as people write it
                )
            elif reason.kind == "user":
                assert reason.id in {n.user_id for n in answer.neighbours}


async def test_reasons_of_the_original_are_its_neighbours_ratings(every: Settings) -> None:
    service = await fitted(every)
    answer = (await service.recommend(1, n=3, k=2, algorithm="original")).value
    # Neighbours 2 and 3 (see test_recommender): 30 from user 2, 50 and 40 from user 3.
    assert [[(r.kind, r.id, r.rating) for r in m.reasons] for m in answer.movies] == [
        [("user", 2, 5.0)],
        [("user", 3, 4.0)],
        [("user", 3, 2.0)],
    ]
    assert [m.neighbours_rated for m in answer.movies] == [1, 1, 1]


async def test_item_based_reasons_name_the_films_rated(every: Settings) -> None:
    service = await fitted(every)
    answer = (await service.recommend(1, n=3, algorithm="itemknn")).value
    assert answer.neighbours == () and all(m.neighbours_rated is None for m in answer.movies)
    reasons = [r for m in answer.movies for r in m.reasons]
    assert reasons and {r.kind for r in reasons} == {"movie"}


async def test_k_is_part_of_the_cache_key_only_where_it_matters(every: Settings) -> None:
    service = await fitted(every)
    item_k1 = (await service.recommend(1, n=3, k=1, algorithm="itemknn")).value
    item_k7 = (await service.recommend(1, n=3, k=7, algorithm="itemknn")).value
    assert item_k1 is item_k7
    original_k1 = (await service.recommend(1, n=3, k=1, algorithm="original")).value
    original_k3 = (await service.recommend(1, n=3, k=3, algorithm="original")).value
    assert original_k1 != original_k3


@pytest.fixture
async def every_client(every: Settings) -> AsyncIterator[Client]:
    """A client of an app serving the tiny release with every algorithm fitted."""
    app = create_app(every)
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        service: Service = app.extensions["service"]
        await service.settled()
        yield test_app.test_client()


async def test_the_api_lists_the_algorithms(every_client: Client) -> None:
    body = await (await every_client.get("/api/algorithms")).get_json()
    assert body["default"] == DEFAULT_ALGORITHM
    assert [a["name"] for a in body["algorithms"]] == list(ALGORITHMS)
    assert {a["availability"] for a in body["algorithms"]} == {"ready"}


async def test_the_api_takes_an_algorithm(every_client: Client) -> None:
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
async def test_an_unknown_algorithm_is_a_400(every_client: Client, value: str) -> None:
    response = await every_client.get(
        "/api/users/1/recommendations", query_string={"algorithm": value}
    )
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["field"] == "algorithm"
    assert "original" in body["error"]["message"]
    page = await every_client.get("/", query_string={"user_id": "1", "algorithm": value})
    alert = (await parsed(page)).css_first("#results [role=alert]")
    assert page.status_code == 400 and alert is not None and "Unknown algorithm" in alert.text()


async def test_a_disabled_algorithm_is_a_503_with_the_reason(client: Client) -> None:
    response = await client.get("/api/users/1/recommendations?algorithm=ease")
    body = await response.get_json()
    assert response.status_code == 503 and "ALGORITHMS" in body["error"]["message"]
    page = await client.get("/?user_id=1&algorithm=ease", headers={"HX-Request": "true"})
    alert = (await parsed(page)).css_first("[role=alert]")
    assert page.status_code == 503 and alert is not None and "not available" in alert.text()


async def test_the_form_offers_every_algorithm_and_keeps_the_choice(
    every_client: Client,
) -> None:
    page = await parsed(await every_client.get("/?user_id=1&algorithm=popularity"))
    for name in ALGORITHMS:
        assert page.css_first(f"select#algorithm option[value={name}]") is not None
    assert page.css_first("select#algorithm option[value=popularity][selected]") is not None
    reasons = [li.text(deep=True) for li in page.css("li.movie ul.reasons > li")]
    assert any("Rated by" in r and "% of users" in r for r in reasons)  # the popularity reason


async def newer_snapshot(service: Service) -> None:
    """Publish a newer snapshot of the same data, as a build job would, and wait for the switch."""
    before = service.status.snapshot_id
    await asyncio.to_thread(build_snapshot, service.settings, list(ALGORITHMS), None, quiet)
    deadline = time.monotonic() + 10
    while service.status.snapshot_id == before:
        assert time.monotonic() < deadline, "the service did not switch to the newer snapshot"
        await asyncio.sleep(0.05)


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def evaluation_summary(page: LexborHTMLParser) -> str:
    """The About page's line naming the dataset evaluated and who ran it."""
    summary = page.css_first("section[aria-labelledby=eval-title] > p")
    assert summary is not None
    return summary.text()


async def test_the_about_page_shows_the_published_evaluation(
    every_client: Client,
) -> None:
    page = await parsed(await every_client.get("/about"))
    heading = page.css_first("h2#eval-title")
    assert heading is not None and heading.text() == "Latest offline evaluation"
    summary = evaluation_summary(page)
    assert "ml-latest-small" in summary and "by the developers" in summary
    # One row per table is the default as it serves, not EASE capped to measure the cap.
    tables = page.css("section[aria-labelledby=eval-title] div.about-table table")
    assert tables and all(len(table.css("tr.is-default")) == 1 for table in tables)
    # What capping EASE as at ml-25m scale costs, from the published figures.
    from app.evaluation.report import PUBLISHED

    random_split = json.loads(PUBLISHED.read_text())["splits"][0]
    cap = page.css_first("p.ease-cap")
    assert cap is not None and random_split["ease_cap"] is not None
    assert f"{random_split['ease_cap']['capped_ndcg']:.3f}" in cap.text()
    assert f"{random_split['ease_cap']['films']:,} most-rated films" in cap.text()


async def test_the_about_page_prefers_this_servers_evaluation(
    every_client: Client, every: Settings
) -> None:
    from app.evaluation.report import PUBLISHED

    report = json.loads(PUBLISHED.read_text())
    report["dataset"]["name"] = "my-own-release"
    folder = every.data_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report))
    summary = evaluation_summary(await parsed(await every_client.get("/about")))
    assert "my-own-release" in summary and "by the developers" not in summary
    (folder / "latest.json").write_text("{not json")
    summary = evaluation_summary(await parsed(await every_client.get("/about")))
    assert "ml-latest-small" in summary


async def test_a_repeated_fragment_is_served_from_the_cache_until_the_model_changes(
    every: Settings,
) -> None:
    app = create_app(every)
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        service: Service = app.extensions["service"]
        await service.settled()
        client = test_app.test_client()
        headers = {"HX-Request": "true"}
        path = "/?user_id=1&n=3&k=2&algorithm=original"
        first = await (await client.get(path, headers=headers)).get_data()
        kept = service.cache_info()
        assert kept.entries > 0

        def broken(*args: object, **kwargs: object) -> None:
            raise AssertionError("ranked again instead of served from the cache")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(OriginalUserKNN, "rank", broken)  # a second render would fail
            assert await (await client.get(path, headers=headers)).get_data() == first
        again = service.cache_info()
        assert again.hits > kept.hits and again.misses == kept.misses
        assert again.entries == kept.entries

        await newer_snapshot(service)  # a new model (mapped again): a new generation
        assert await (await client.get(path, headers=headers)).get_data() == first
        fresh = service.cache_info()
        assert fresh.entries > again.entries and fresh.misses > again.misses
        # An error is rendered each time and never cached.
        await client.get("/?user_id=999&n=3", headers=headers)
        assert service.cache_info().entries == fresh.entries
