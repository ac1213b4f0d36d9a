"""A saved profile's page is the rating page: each change posted to /me/<token> is applied to
the ratings stored, on SQLite and on PostgreSQL (`database_url`).

Through the app's test client with the tiny release (films 10-60), and for a whole 10,000-rating
profile a release of 10,050 films made here. The stored ratings are read back through
GET /me/<token>/export, the profile's own download.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from werkzeug.datastructures import FileStorage

from app import create_app
from app.config import Settings
from app.engine import MAX_IMPORT_BYTES, MAX_RATINGS
from tests.conftest import make_zip, one, parse, text_of, texts, wait_until_settled

HTMX = {"HX-Request": "true"}
BIG_FILMS = 10_050


async def _client(settings: Settings, source: Path, database_url: str) -> AsyncIterator[Client]:
    app = create_app(settings.replace(source=str(source), database_url=database_url))
    async with app.test_app() as test_app:
        await wait_until_settled(app, 60)
        assert app.extensions["service"].ready
        yield test_app.test_client()


@pytest.fixture
async def client(settings: Settings, tiny_zip: Path, database_url: str) -> AsyncIterator[Client]:
    """A ready app on the tiny release, its profiles in a fresh database."""
    async for ready in _client(settings, tiny_zip, database_url):
        yield ready


@pytest.fixture
def big_zip(tmp_path: Path) -> Path:
    """A release of BIG_FILMS films (ids 1 to BIG_FILMS), 30 users rating some of the first 600."""
    rng = random.Random(23)
    movies = "movieId,title,genres\n" + "".join(
        f"{film},Film number {film} ({1950 + film % 70}),{'Drama' if film % 2 else 'Comedy'}\n"
        for film in range(1, BIG_FILMS + 1)
    )
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{user},{film},{rng.randint(1, 10) / 2},964982703\n"
        for user in range(1, 31)
        for film in sorted(rng.sample(range(1, 601), 80))
    )
    path = tmp_path / "ml-big.zip"
    path.write_bytes(make_zip({"movies.csv": movies, "ratings.csv": ratings}, folder="ml-big"))
    return path


@pytest.fixture
async def big_client(settings: Settings, big_zip: Path, database_url: str) -> AsyncIterator[Client]:
    """A ready app on the release of BIG_FILMS films, its profiles in a fresh database."""
    async for ready in _client(settings, big_zip, database_url):
        yield ready


async def save(client: Client, ratings: str) -> str:
    """The private link of a new profile holding `ratings` (r= form, "10:4,20:3.5")."""
    response = await client.post("/me", form={"r": ratings})
    assert response.status_code == 303, await response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return str(response.headers["Location"])


async def stored(client: Client, location: str) -> dict[int, float]:
    """The profile's ratings as the server keeps them, through its JSON download."""
    response = await client.get(f"{location}/export")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.get_json()
    return {item["movie_id"]: item["rating"] for item in body["ratings"]}


async def change(client: Client, location: str, form: dict[str, str]) -> Any:
    """A change as static/js/pages.js posts it: htmx, the change and the list settings."""
    return await client.post(location, form=form, headers=HTMX)


async def test_the_page_shows_the_profiles_titles_and_stars(client: Client) -> None:
    location = await save(client, "10:4,20:3.5")
    response = await client.get(location)
    assert response.status_code == 200
    page = parse(await response.get_data(as_text=True))
    rows = page.css("ul[aria-label='Films you rated'] li")
    assert [text_of(one(row, ".film-title")) for row in rows] == [
        "Toy Story (1995)",
        "The American President (1995)",
    ]
    assert [one(row, "input[checked]").attributes["value"] for row in rows] == ["10:4.0", "20:3.5"]
    assert [one(row, "button[name=remove]").attributes["value"] for row in rows] == ["10", "20"]
    # The starter grid shows the stars given too, and the page names them for the search.
    starred = [radio.attributes["value"] for radio in page.css("#found input[checked]")]
    assert "10:4.0" in starred and set(starred) <= {"10:4.0", "20:3.5"}
    state = one(page, "#rate-state")
    assert state.attributes["data-rated"] == "10:4,20:3.5"
    assert not state.css("input[name=r]"), "a saved profile's page never sends its ratings"
    visitor = one(page, "#visitor")
    assert visitor.attributes["data-url"] == location
    assert visitor.attributes["data-method"] == "post"
    assert visitor.attributes["hx-history"] == "false"
    assert page.css(".recommendations li, ol li"), "recommendations from the profile"
    assert "saved behind this private link" in text_of(one(page, ".rate-card .lede"))
    assert "address" not in " ".join(texts(page, ".share"))
    assert "download" in one(page, f".share a[href='{location}/export']").attributes


async def test_set_remove_and_settings_change_the_stored_profile(client: Client) -> None:
    location = await save(client, "10:4,20:3.5")
    starred = await change(client, location, {"set": "30:5", "n": "2"})
    fragment = parse(await starred.get_data(as_text=True))
    assert starred.status_code == 200
    assert starred.headers["HX-Replace-Url"] == f"{location}?n=2"
    assert starred.headers["Cache-Control"] == "no-store"
    assert texts(fragment, "#rated-title") == ["Your ratings (3)"]
    assert one(fragment, "#rate-state").attributes["data-rated"] == "10:4,20:3.5,30:5"
    assert await stored(client, location) == {10: 4.0, 20: 3.5, 30: 5.0}

    changed = await change(client, location, {"set": "10:1.5"})
    assert changed.status_code == 200
    removed = await change(client, location, {"remove": "20"})
    assert removed.status_code == 200
    assert await stored(client, location) == {10: 1.5, 30: 5.0}

    # The settings alone change the list, not the ratings; the address keeps them.
    settings = await change(client, location, {"genre": "Drama", "n": "1"})
    fragment = parse(await settings.get_data(as_text=True))
    assert settings.status_code == 200
    assert settings.headers["HX-Replace-Url"] == f"{location}?n=1&genre=Drama"
    assert one(fragment, "#genre option[selected]").attributes["value"] == "Drama"
    assert await stored(client, location) == {10: 1.5, 30: 5.0}
    reopened = parse(await (await client.get(f"{location}?n=1&genre=Drama")).get_data(as_text=True))
    assert one(reopened, "#n").attributes["value"] == "1"
    assert texts(reopened, "#rated-title") == ["Your ratings (2)"]


async def test_without_javascript_a_post_answers_the_whole_page(client: Client) -> None:
    location = await save(client, "10:4")
    response = await client.post(location, form={"n": "3"})
    assert response.status_code == 200
    page = parse(await response.get_data(as_text=True))
    assert text_of(one(page, "h1")) == "Your saved profile"
    assert one(page, "#n").attributes["value"] == "3"
    # A GET is never a change, whatever its query says.
    await client.get(f"{location}?set=20:5&remove=10")
    assert await stored(client, location) == {10: 4.0}


async def test_an_import_joins_the_profile_and_wins_where_both_rate_a_film(
    client: Client,
) -> None:
    location = await save(client, "10:2,20:3")
    export = "movieId,rating\r\n10,4.5\r\n30,5\r\n"
    response = await client.post(
        location, form={"import": "1", "paste": export, "n": "2"}, headers=HTMX
    )
    fragment = parse(await response.get_data(as_text=True))
    assert response.status_code == 200
    assert text_of(one(fragment, ".imported-summary")).startswith("2 of 2 films found")
    assert "1 film you had rated now has the imported rating." in texts(fragment, ".imported .note")
    assert not fragment.css(".save-offer"), "it is saved already"
    assert await stored(client, location) == {10: 4.5, 20: 3.0, 30: 5.0}
    # A failed import says why beside the form and leaves the profile as it was.
    failed = await client.post(
        location, form={"import": "1", "paste": "Film,Stars\nHeat,5\n"}, headers=HTMX
    )
    assert failed.status_code == 400
    assert failed.headers["HX-Retarget"] == "#import-status"
    assert "Row 1" in text_of(one(parse(await failed.get_data(as_text=True)), "[role=alert]"))
    assert await stored(client, location) == {10: 4.5, 20: 3.0, 30: 5.0}
    # An export may be as large on this page as on /rate (2 MiB): 1 MB, mostly blank lines.
    padded = "movieId,rating\n50,1\n" + "\n" * 1_000_000
    files = {"file": FileStorage(io.BytesIO(padded.encode()), "ratings.csv", "text/csv")}
    large = await client.post(location, form={"import": "1"}, files=files, headers=HTMX)
    assert large.status_code == 200, await large.get_data(as_text=True)
    assert await stored(client, location) == {10: 4.5, 20: 3.0, 30: 5.0, 50: 1.0}
    # A file over 2 MiB is refused as too large; without JavaScript, on the page.
    big = "movieId,rating\n" + "10,4\n" * (MAX_IMPORT_BYTES // 5 + 1)
    files = {"file": FileStorage(io.BytesIO(big.encode()), "ratings.csv", "text/csv")}
    too_large = await client.post(location, form={"import": "1"}, files=files)
    assert too_large.status_code == 413
    page = parse(await too_large.get_data(as_text=True))
    assert "over 2 MiB" in text_of(one(page, "[role=alert]"))
    assert texts(page, "#rated-title") == ["Your ratings (4)"]
    assert await stored(client, location) == {10: 4.5, 20: 3.0, 30: 5.0, 50: 1.0}


@pytest.mark.parametrize(
    "form",
    [
        {"set": "ten:4"},
        {"set": "10"},
        {"set": "999999:4"},
        {"set": "10:4.25"},
        {"set": "10:7"},
        {"set": "10:0"},
        {"remove": "Heat"},
        {"set": "30:5", "n": "0"},
        {"set": "30:5", "genre": "Nope"},
    ],
    ids=["film", "no-rating", "unknown", "quarter", "seven", "zero", "remove", "n", "genre"],
)
async def test_a_bad_change_is_400_with_a_message_and_the_profile_unchanged(
    client: Client, form: dict[str, str]
) -> None:
    location = await save(client, "10:4,20:3.5")
    for headers in (HTMX, {}):
        response = await client.post(location, form=form, headers=headers)
        assert response.status_code == 400
        page = parse(await response.get_data(as_text=True))
        assert text_of(one(page, "[role=alert]"))
        assert "Traceback" not in page.html
        # The page still shows what is stored.
        assert texts(page, "#rated-title") == ["Your ratings (2)"]
    assert await stored(client, location) == {10: 4.0, 20: 3.5}


async def test_two_tabs_changing_one_profile_keep_each_others_changes(client: Client) -> None:
    location = await save(client, "10:4")
    # Both tabs opened the page; each then rates a film the other's page never saw.
    first = await client.get(location)
    second = await client.get(location)
    assert first.status_code == second.status_code == 200
    assert (await change(client, location, {"set": "20:3"})).status_code == 200
    answered = await change(client, location, {"set": "30:5"})
    assert one(parse(await answered.get_data(as_text=True)), "#rate-state").attributes[
        "data-rated"
    ] == ("10:4,20:3,30:5")
    assert (await change(client, location, {"remove": "10"})).status_code == 200
    assert (await change(client, location, {"set": "50:2"})).status_code == 200
    assert await stored(client, location) == {20: 3.0, 30: 5.0, 50: 2.0}


async def test_an_unknown_token_is_404_on_every_route(client: Client) -> None:
    unknown = "/me/AAAAAAAAAAAAAAAAAAAAAA"
    answers = [
        await client.get(unknown),
        await client.post(unknown, form={"set": "10:4"}),
        await client.post(unknown, form={"set": "10:4"}, headers=HTMX),
        await client.post(unknown, form={"import": "1", "paste": "movieId,rating\n10,4\n"}),
        await client.get(f"{unknown}/export"),
        await client.post(f"{unknown}/forget", form={"confirm": "yes"}),
    ]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    alert = one(parse(await answers[2].get_data(as_text=True)), "[role=alert]")
    assert "forgotten or has expired" in text_of(alert)
    # Any other method is refused, privately too.
    refused = await client.put(unknown)
    assert refused.status_code == 405 and refused.headers["Cache-Control"] == "no-store"


async def test_a_forgotten_profile_is_gone_from_its_page_at_once(client: Client) -> None:
    location = await save(client, "10:4")
    gone = await client.post(f"{location}/forget", form={"confirm": "yes"})
    assert gone.status_code == 200
    assert (await change(client, location, {"set": "20:3"})).status_code == 404
    assert (await client.get(location)).status_code == 404


async def test_the_access_log_never_shows_the_token_of_a_change(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    location = await save(client, "10:4")
    token = location.removeprefix("/me/")
    with caplog.at_level(logging.INFO):
        await change(client, location, {"set": "20:3"})
        await client.get(f"{location}/export")
    assert caplog.records
    assert all(token not in record.getMessage() for record in caplog.records)


async def test_a_profile_of_max_ratings_saves_opens_and_changes(big_client: Client) -> None:
    rng = random.Random(7)
    films = sorted(rng.sample(range(1, BIG_FILMS + 1), MAX_RATINGS))
    pairs = ",".join(f"{film}:{rng.randint(1, 10) / 2:g}" for film in films)
    # /rate posts a list this long, and offers to save it.
    rate = parse(await (await big_client.post("/rate", form={"r": pairs})).get_data(as_text=True))
    assert "too many for this page's address" in text_of(one(rate, "form.share"))
    assert one(rate, "form.save-profile input[name=r]").attributes["value"] == pairs
    location = await save(big_client, pairs)

    page = await big_client.get(location)
    assert page.status_code == 200
    tree = parse(await page.get_data(as_text=True))
    assert texts(tree, "#rated-title") == [f"Your ratings ({MAX_RATINGS})"]
    assert len(one(tree, "#rate-state").attributes["data-rated"] or "") == len(pairs)

    unrated = next(film for film in range(1, BIG_FILMS + 1) if film not in set(films))
    # At the limit a new film cannot join, but a rating can change.
    full = await change(big_client, location, {"set": f"{unrated}:4"})
    assert full.status_code == 400
    assert f"{MAX_RATINGS:,}" in text_of(
        one(parse(await full.get_data(as_text=True)), "[role=alert]")
    )
    before = await stored(big_client, location)
    assert len(before) == MAX_RATINGS
    rerated = await change(big_client, location, {"set": f"{films[0]}:0.5"})
    assert rerated.status_code == 200, await rerated.get_data(as_text=True)
    after = await stored(big_client, location)
    assert after == {**before, films[0]: 0.5}
    # Nor can an import take it past the limit; the profile is as it was.
    export = f"movieId,rating\n{films[1]}:3\n{unrated},4\n".replace(":", ",")
    imported = await big_client.post(location, form={"import": "1", "paste": export})
    assert imported.status_code == 400
    alert = text_of(one(parse(await imported.get_data(as_text=True)), "[role=alert]"))
    assert alert.startswith("Nothing was imported: with it the profile would hold 10,001")
    assert await stored(big_client, location) == after


async def test_changes_made_at_the_same_moment_are_all_kept(client: Client) -> None:
    # Each change reads the ratings stored, makes the list and writes the result: two made at
    # once both read the same ratings, and the later write would drop the earlier's film.
    location = await save(client, "10:4")
    films = (20, 30, 40, 50, 60)
    answers = await asyncio.gather(
        *(change(client, location, {"set": f"{film}:3.5"}) for film in films)
    )
    assert [answer.status_code for answer in answers] == [200] * len(films)
    assert await stored(client, location) == {10: 4.0, **{film: 3.5 for film in films}}
