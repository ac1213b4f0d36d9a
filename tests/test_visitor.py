"""Visitors not in the data: ratings in, recommendations out, via the engine, API and page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from quart import Response
from quart.typing import TestClientProtocol as Client
from selectolax.lexbor import LexborHTMLParser
from sklearn.metrics.pairwise import cosine_similarity

from app.config import ALL_ALGORITHMS, Settings
from app.engine import MAX_RATINGS, Filters, InvalidRatings, Service, VisitRequest
from app.recommender import ALGORITHMS
from tests.conftest import TINY_RATINGS


def tiny_frame() -> pd.DataFrame:
    rows = [line.split(",") for line in TINY_RATINGS.strip().splitlines()[1:]]
    return pd.DataFrame(
        [(int(u), int(m), float(r)) for u, m, r, _ in rows],
        columns=["user_id", "movie_id", "rating"],
    )


def dense_new_row(ratings: pd.DataFrame, given: dict[int, float], n: int, k: int) -> list[int]:
    """The original design for a new row: pivot with the row added, cosine, k best, mean."""
    matrix = ratings.pivot_table(index="user_id", columns="movie_id", values="rating").fillna(0)
    row = pd.Series(given, dtype=float).reindex(matrix.columns).fillna(0).to_numpy()
    sims = cosine_similarity(row[np.newaxis, :], matrix.to_numpy())[0]
    neighbours = np.lexsort((np.arange(len(sims)), -sims))[:k]
    scores = matrix.to_numpy()[neighbours].mean(axis=0)
    unseen = np.flatnonzero(row == 0)
    best = unseen[np.lexsort((unseen, -scores[unseen]))[:n]]
    return matrix.columns.to_numpy()[best].tolist()


@pytest.fixture
async def service(settings: Settings, tiny_zip: Path) -> Service:
    """The tiny release with every algorithm fitted."""
    service = Service(settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS))
    service.start()
    await service.settled()
    return service


@pytest.mark.parametrize(
    "given",
    [{10: 5.0, 20: 3.0}, {30: 4.5}, {50: 1.0, 40: 5.0, 10: 0.5}, {20: 2.0, 30: 2.0, 50: 2.0}],
)
async def test_the_original_gives_what_the_dense_design_gives_a_new_row(
    service: Service, given: dict[int, float]
) -> None:
    for k in (1, 2, 4):
        answer, _ = await service.recommend_for_ratings(
            list(given.items()), n=5, k=k, algorithm="original"
        )
        expected = dense_new_row(tiny_frame(), given, 5, k)
        assert [m.movie_id for m in answer.movies] == expected


async def test_an_adhoc_profile_is_compared_with_everyone(service: Service) -> None:
    # The same ratings as user 1: user 1 is now the nearest neighbour, at similarity 1.
    answer, ratings = await service.recommend_for_ratings([(20, 3.0), (10, 5.0)], n=3, k=2)
    assert ratings.pairs() == [(10, 5.0), (20, 3.0)]
    original, _ = await service.recommend_for_ratings(
        ratings.pairs(), n=3, k=2, algorithm="original"
    )
    first = original.neighbours[0]
    assert (first.user_id, first.similarity) == (1, pytest.approx(1.0))
    assert answer.user_id is None


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_every_algorithm_takes_adhoc_ratings(service: Service, name: str) -> None:
    answer, _ = await service.recommend_for_ratings(
        [(10, 5.0), (30, 4.0)], n=3, k=2, algorithm=name
    )
    assert answer.algorithm == name
    assert not {10, 30} & {m.movie_id for m in answer.movies}


async def test_a_film_nobody_rated_is_accepted_but_changes_nothing(service: Service) -> None:
    with_unrated, _ = await service.recommend_for_ratings(
        [(10, 5.0), (60, 4.0)], algorithm="original"
    )
    without, _ = await service.recommend_for_ratings([(10, 5.0)], algorithm="original")
    assert [m.movie_id for m in with_unrated.movies] == [m.movie_id for m in without.movies]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(999, 4.0)], "no film with id 999"),
        ([(10, 7.0)], "from 0.5 to 5.0 in steps of 0.5"),
        ([(10, 0.0)], "from 0.5 to 5.0"),
        ([(10, 4.25)], "steps of 0.5"),
        ([(10, float("nan"))], "steps of 0.5"),
        ([(10, True)], "steps of 0.5"),
        ([(10, "4")], "steps of 0.5"),
        ([("10", 4.0)], "whole number"),
        ([(True, 4.0)], "whole number"),
        ([(10, 4.0), (10, 3.0)], "rated twice"),
        ([(10, 4.0)] * (MAX_RATINGS + 1), f"At most {MAX_RATINGS}"),
    ],
)
async def test_bad_ratings_are_refused_with_the_reason(
    service: Service, pairs: list[tuple[Any, Any]], message: str
) -> None:
    # Any: the point is what arrives when a caller sends the wrong types.
    with pytest.raises(InvalidRatings, match=message):
        await service.recommend_for_ratings(pairs)


async def test_filters_keep_the_algorithms_order(service: Service) -> None:
    everything, _ = await service.recommend_for_ratings(
        [(10, 5.0)], n=10, k=3, algorithm="original"
    )
    order = [m.movie_id for m in everything.movies]
    action, _ = await service.recommend_for_ratings(
        [(10, 5.0)], n=10, k=3, algorithm="original", filters=Filters(genre="Action")
    )
    assert [m.movie_id for m in action.movies] == [30]  # Heat is the only Action film
    recent, _ = await service.recommend_for_ratings(
        [(10, 5.0)], n=10, k=3, algorithm="original", filters=Filters(year_from=1996)
    )
    assert [m.movie_id for m in recent.movies] == [m for m in order if m == 40]  # 2001
    old, _ = await service.recommend_for_ratings(
        [(10, 5.0)], n=10, k=3, algorithm="original", filters=Filters(year_to=1995)
    )
    assert [m.movie_id for m in old.movies] == [m for m in order if m in (20, 30)]


async def test_search_handles_case_accents_articles_and_years(service: Service) -> None:
    async def titles(query: str) -> list[str]:
        return [m.title for m in await service.search_movies(query, 20)]

    assert await titles("american president") == ["The American President"]
    assert await titles("The American President") == ["The American President"]
    assert await titles("AMÉRICAN") == ["The American President"]
    # As MovieLens files it:
    assert await titles("american president, the") == ["The American President"]
    assert await titles("heat 1995") == ["Heat"] and await titles("heat 2001") == []
    assert await titles("!!!") == []
    # Nothing typed: the starters, the most rated first (3, 3, 2 ratings).
    assert [m.movie_id for m in await service.search_movies("", 20)][:3] == [10, 20, 30]


async def test_starting_from_a_user_copies_their_ratings(service: Service) -> None:
    visit = (await service.visit(VisitRequest(from_user=3))).value
    assert dict(visit.ratings.pairs()) == {10: 5.0, 50: 4.0, 40: 2.0}


# The JSON API


async def test_the_api_recommends_for_posted_ratings(client: Client) -> None:
    body = {"ratings": [{"movie_id": 10, "rating": 5}, {"movie_id": 20, "rating": 3.0}]}
    response = await client.post("/api/recommendations?n=3&k=2", json=body)
    answer = await response.get_json()
    assert response.status_code == 200
    assert answer["user_id"] is None and answer["algorithm"] == "original"
    # User 1 (same ratings) and user 2 are the neighbours; only user 2 rated anything new.
    assert [m["movie_id"] for m in answer["recommendations"]] == [30, 40, 50]
    assert [x["user_id"] for x in answer["neighbours"]] == [1, 2]
    assert answer["ratings"] == [{"movie_id": 10, "rating": 5.0}, {"movie_id": 20, "rating": 3.0}]
    per_user = await (await client.get("/api/users/1/recommendations?n=3&k=2")).get_json()
    assert set(answer) == set(per_user) | {"ratings"}


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ('{"ratings": [{"movie_id": 999999, "rating": 4}]}', 400, "no film with id 999999"),
        ('{"ratings": [{"movie_id": 10, "rating": 7}]}', 400, "from 0.5 to 5.0"),
        ('{"ratings": [{"movie_id": 10, "rating": 4}', 400, "not valid JSON"),
        ("[]", 400, '"ratings" list'),
        ('{"ratings": {}}', 400, '"ratings" list'),
        ('{"ratings": [{"movie_id": 10}]}', 400, 'exactly "movie_id" and "rating"'),
        ('{"ratings": [{"movie_id": 10, "rating": 4, "x": 1}]}', 400, "exactly"),
        ('{"ratings": [[10, 4]]}', 400, "must be an object"),
        ("\xff\xfe", 400, "not valid JSON"),
    ],
)
async def test_bad_payloads_get_clear_4xx(
    client: Client, data: str, status: int, message: str
) -> None:
    response = await client.post(
        "/api/recommendations", data=data, headers={"Content-Type": "application/json"}
    )
    body = await response.get_json()
    assert response.status_code == status and message in body["error"]["message"], body
    assert "Traceback" not in json.dumps(body)


async def test_a_whole_history_is_taken_and_more_is_refused(client: Client) -> None:
    assert MAX_RATINGS >= 5_000, "whole MovieLens histories, not a sample"
    huge = {"ratings": [{"movie_id": 10, "rating": 4}] * (3 * MAX_RATINGS)}
    response = await client.post("/api/recommendations", json=huge)
    body = await response.get_json()
    assert response.status_code == 413
    assert f"at most {MAX_RATINGS} ratings" in body["error"]["message"]
    small = {"ratings": [{"movie_id": 10, "rating": 4}] * (MAX_RATINGS + 1)}
    response = await client.post("/api/recommendations", json=small)
    body = await response.get_json()
    assert response.status_code == 400 and f"At most {MAX_RATINGS}" in body["error"]["message"]


async def test_the_api_validates_filters(client: Client) -> None:
    body = {"ratings": [{"movie_id": 10, "rating": 5}]}
    bad = await client.post("/api/recommendations?genre=Nope", json=body)
    assert bad.status_code == 400 and (await bad.get_json())["error"]["field"] == "genre"
    backwards = await client.post("/api/recommendations?year_from=2000&year_to=1990", json=body)
    assert backwards.status_code == 400
    good = await client.post("/api/recommendations?genre=Action&n=5&k=3", json=body)
    assert [m["movie_id"] for m in (await good.get_json())["recommendations"]] == [30]


# The page


async def parsed(response: Response) -> LexborHTMLParser:
    """The response body as an HTML tree."""
    return LexborHTMLParser(await response.get_data(as_text=True))


def text_of(page: LexborHTMLParser, selector: str) -> str:
    """The text of the one element `selector` finds (which must be there)."""
    found = page.css_first(selector)
    assert found is not None, f"nothing matches {selector!r}"
    return found.text()


def film_titles(page: LexborHTMLParser, selector: str) -> list[str]:
    """The titles (without the year) of the films `selector` finds."""
    return [title.text(deep=False).strip() for title in page.css(selector)]


async def test_a_rating_updates_the_list_and_the_address(client: Client) -> None:
    response = await client.get(
        "/rate?r=10:5&set=20:3&algorithm=original&k=2&n=3", headers={"HX-Request": "true"}
    )
    page = await parsed(response)
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/rate?r=10:5,20:3&n=3&k=2&algorithm=original"
    assert text_of(page, "h2#recs-title") == "Top 3 for you"
    assert "Heat" in film_titles(page, "li.movie .movie-title")
    assert text_of(page, "h2#rated-title") == "Your ratings (2)"
    state = page.css_first("#rate-state input[name=r]")  # the state the next request carries
    assert state is not None and state.attributes["value"] == "10:5,20:3"


async def test_changing_and_removing_a_rating(client: Client) -> None:
    changed = await client.get("/rate?r=10:5,20:3&set=10:1.5", headers={"HX-Request": "true"})
    assert changed.headers["HX-Push-Url"] == "/rate?r=10:1.5,20:3"
    removed = await client.get("/rate?r=10:5,20:3&remove=10", headers={"HX-Request": "true"})
    assert removed.headers["HX-Push-Url"] == "/rate?r=20:3"
    emptied = await client.get("/rate?r=20:3&remove=20", headers={"HX-Request": "true"})
    assert emptied.headers["HX-Push-Url"] == "/rate"
    assert "Rate a few films you know" in text_of(await parsed(emptied), "section.empty")


async def test_a_reload_renders_the_ratings_from_the_address(client: Client) -> None:
    response = await client.get("/rate?r=10:5,30:4.5")
    page = await parsed(response)
    assert response.status_code == 200
    assert page.css_first("html[lang]") is not None  # the whole page, not a fragment
    assert text_of(page, "h2#rated-title") == "Your ratings (2)"
    assert page.css_first('input#mine-30-9[name=set][value="30:4.5"][checked]') is not None


async def test_the_fragment_is_what_visitor_holds_and_says_stars_need_javascript(
    client: Client,
) -> None:
    fragment = await parsed(await client.get("/rate?r=10:5", headers={"HX-Request": "true"}))
    assert fragment.css_first("#visitor") is None, "#visitor is never replaced, only filled"
    assert text_of(fragment, "title") == "1 rated · Rate films · Movie Night"
    page = await parsed(await client.get("/rate?r=10:5"))
    visitor = page.css_first("#visitor")
    assert visitor is not None and visitor.attributes["hx-sync"] == "this:queue all"
    assert "aria-live" not in visitor.attributes  # a short summary is announced elsewhere
    assert page.css_first("#visitor-status[role=status]") is not None
    # With JavaScript off the stars are hidden by a stylesheet and the page says why.
    link = page.css_first("head noscript")
    assert link is not None and "noscript.css" in link.html
    assert "Giving stars needs JavaScript" in text_of(page, "main noscript")


async def test_starting_from_a_movielens_user(client: Client) -> None:
    response = await client.get("/rate?from_user=3", headers={"HX-Request": "true"})
    assert response.headers["HX-Push-Url"] == "/rate?r=10:5,40:2,50:4"
    said = text_of(await parsed(response), "section[aria-labelledby=rated-title] p.note")
    assert "user 3's 3 highest-rated films" in said and "replaced the ratings you had" in said
    missing = await client.get("/rate?from_user=99", headers={"HX-Request": "true"})
    assert missing.status_code == 404
    assert "Valid user IDs are 1 to 4" in text_of(await parsed(missing), "[role=alert]")


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("r=10:7", 400, "from 0.5 to 5.0"),
        ("r=10:5,bad", 400, "not in the form"),
        ("r=999:4", 400, "no film with id 999"),
        ("set=10", 400, "movie_id:rating"),
        ("genre=Nope", 400, "Unknown genre"),
        ("year_from=12", 400, "a year from"),
    ],
)
async def test_bad_page_input_is_explained_in_place(
    client: Client, query: str, status: int, message: str
) -> None:
    response = await client.get(f"/rate?{query}", headers={"HX-Request": "true"})
    assert response.status_code == status
    assert message in text_of(await parsed(response), "[role=alert]")
    assert response.headers["HX-Push-Url"] == "false"


async def test_search_returns_star_controls_with_the_current_ratings(client: Client) -> None:
    found = await parsed(await client.get("/rate/search?q=president&r=20:3.5"))
    assert "The American President" in film_titles(found, "li.film .film-title")
    assert "1 film matching" in text_of(found, "p[role=status]")
    assert found.css_first('input[name=set][value="20:3.5"][checked]') is not None
    nothing = await parsed(await client.get("/rate/search?q=zzzz"))
    assert "No film matches" in text_of(nothing, "p[role=status]")
    starters = await parsed(await client.get("/rate/search?q="))
    assert "Well-known films" in text_of(starters, "p[role=status]")
    assert "Toy Story" in film_titles(starters, "li.film .film-title")


async def test_titles_are_escaped_in_search_results(client: Client) -> None:
    found = await parsed(await client.get("/rate/search?q=script"))
    # Escaped, the markup in the title is text: no element is made of it.
    assert found.css("script") == []
    assert "<script>alert(1)</script>" in film_titles(found, "li.film .film-title")


async def test_export_downloads_the_ratings_as_api_json(client: Client) -> None:
    response = await client.get("/rate/export?r=30:4.5,10:5")
    assert "attachment" in response.headers["Content-Disposition"]
    assert json.loads(await response.get_data(as_text=True)) == {
        "ratings": [{"movie_id": 10, "rating": 5.0}, {"movie_id": 30, "rating": 4.5}]
    }
