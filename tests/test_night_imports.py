"""Bringing a history to a movie night, and a saved profile starting or joining one.

On the tiny release (films 10-60, with IMDb ids in links.csv) and a real database, SQLite and
PostgreSQL (`database_url`). Exports are generated (tests/exports.py), never real people's.
Pages are checked by their elements (selectolax); a member's ratings by what their page
lists, through the public routes only.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from quart import Quart
from werkzeug.datastructures import FileStorage

from app import create_app
from app.config import Settings
from app.data.movielens import load
from app.engine import MAX_IMPORT_BYTES
from app.web.shared import render
from tests.conftest import make_zip, one, parse, text_of, texts, wait_until_settled
from tests.exports import Export, imdb_export, letterboxd_export, movielens_export
from tests.tiny import MOVIES, TINY_MOVIES, TINY_RATINGS

if TYPE_CHECKING:  # pytest would try to collect a Test* class imported at run time
    from quart.typing import TestAppProtocol, TestClientProtocol

# tests/tiny.py's films with IMDb ids, as links.csv gives them: 10 -> tt0000110, ...
LINKS = "movieId,imdbId,tmdbId\n" + "".join(f"{m},{m + 100:07d},{m}\n" for m, _, _ in MOVIES)
TITLES = {
    10: "Toy Story (1995)",
    20: "The American President (1995)",
    30: "Heat (1995)",
    50: "Babylon 5",
}
# Toy Story 4.5 and Babylon 5 4 stars; a film the catalogue does not have.
IMDB_FILE = (
    "Const,Your Rating,Title,Year\n"
    "tt0000110,9,Toy Story,1995\ntt0000150,8,Babylon 5,1994\ntt0000999,3,Lost,2001\n"
)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The tiny release with links.csv, as a zip."""
    path = tmp_path / "ml-tiny.zip"
    files = {"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "links.csv": LINKS}
    path.write_bytes(make_zip(files))
    return path


@pytest.fixture
def movies(release: Path, tmp_path: Path) -> pd.DataFrame:
    """The tiny release's films as the loader reads them (for tests/exports.py)."""
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(release) as archive:
        archive.extractall(folder)
    return load(folder).movies


@pytest.fixture
async def app(
    settings: Settings, release: Path, database_url: str
) -> AsyncIterator[TestAppProtocol]:
    """The ready app on the tiny release, its nights in a fresh database, logging access."""
    quart: Quart = create_app(
        settings.replace(source=str(release), database_url=database_url, access_log=True)
    )
    async with quart.test_app() as test_app:
        await wait_until_settled(quart)
        yield test_app


async def new_night(app: TestAppProtocol) -> str:
    """A new night's path."""
    response = await app.test_client().post("/nights")
    assert response.status_code == 303
    return str(response.headers["Location"])


async def member_of(app: TestAppProtocol, night: str, name: str = "Ana") -> TestClientProtocol:
    """A new browser that has joined `night`."""
    member = app.test_client()
    response = await member.post(f"{night}/join", form={"name": name})
    assert response.status_code == 303, await response.get_data(as_text=True)
    return member


def upload(data: bytes | str) -> dict[str, FileStorage]:
    """A file chosen in the form's file field."""
    content = data.encode() if isinstance(data, str) else data
    return {"file": FileStorage(io.BytesIO(content), "ratings.csv", content_type="text/csv")}


async def my_ratings(member: TestClientProtocol, night: str) -> dict[str, str]:
    """Title -> "You gave it 4.5 ★", as the member's page lists their ratings."""
    page = parse(await (await member.get(night)).get_data(as_text=True))
    titles = texts(page, "#night-mine .film-title")
    given = texts(page, "#night-mine .film-genres")
    return dict(zip(titles, given, strict=True))


def stars(ratings: dict[int, float]) -> dict[str, str]:
    return {TITLES[movie]: f"You gave it {rating} ★" for movie, rating in ratings.items()}


# ---- an export brought to a night ---------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "source"),
    [(imdb_export, "IMDb"), (letterboxd_export, "Letterboxd"), (movielens_export, "MovieLens")],
    ids=["imdb", "letterboxd", "movielens"],
)
async def test_each_kind_of_export_joins_a_members_ratings_at_a_night(
    app: TestAppProtocol, movies: pd.DataFrame, make: object, source: str
) -> None:
    night = await new_night(app)
    ana = await member_of(app, night)
    export: Export = make(movies.loc[list(TITLES)])  # type: ignore[operator]
    response = await ana.post(f"{night}/import", files=upload(export.data))
    assert response.status_code == 200, await response.get_data(as_text=True)
    page = parse(await response.get_data(as_text=True))
    assert text_of(one(page, "#night-imported #imported-title")).startswith(
        f"Imported from {source}"
    )
    found = len(export.expected)
    summary = text_of(one(page, ".imported-summary"))
    assert summary.startswith(f"{found} of {found} films found."), summary
    assert await my_ratings(ana, night) == stars(export.expected)
    assert texts(page, ".members li") == [f"Ana (you) · {found} ratings"]


async def test_an_import_joins_the_ratings_given_and_wins_where_both_rate_a_film(
    app: TestAppProtocol,
) -> None:
    night = await new_night(app)
    ana = await member_of(app, night)
    for pair in ("10:2", "30:3.5"):
        await ana.post(f"{night}/ratings", form={"set": pair})
    response = await ana.post(f"{night}/import", form={"paste": IMDB_FILE})
    page = parse(await response.get_data(as_text=True))
    assert response.status_code == 200
    assert text_of(one(page, ".imported-summary")) == (
        "2 of 3 films found; 1 is not in this catalogue. They join your list."
    )
    assert "1 film you had rated now has the imported rating." in texts(page, ".imported .note")
    # The rows not imported are listed, folded away.
    assert "open" not in one(page, "details.unmatched").attributes
    assert texts(page, "details.unmatched tbody td") == [
        "4",
        "Lost",
        "2001",
        "Not in this catalogue.",
    ]
    assert await my_ratings(ana, night) == stars({10: 4.5, 30: 3.5, 50: 4.0})
    # The page says which form adds and which replaces.
    assert text_of(one(page, ".bring-import button")) == "Import and add to mine"
    assert "replace" in text_of(one(page, ".bring-replace legend")).lower()
    assert one(page, ".night-layout").attributes["data-night-url"] == night


@pytest.mark.parametrize(
    ("form", "files", "status", "says"),
    [
        ({}, None, 400, "Choose your export's file"),
        ({}, b"", 400, "Choose your export's file"),
        ({}, b"\x89PNG\r\n\x1a\n" + bytes(100), 400, "image"),
        ({"paste": "Film,Stars\nHeat,5\n"}, None, 400, "Row 1"),
        ({"paste": "   \n"}, None, 400, "Choose your export's file"),
        ({}, "Const,Your Rating\ntt0000110,12\n", 400, 'column "Your Rating"'),
        ({}, "movieId,rating\n" + "10,4\n" * (MAX_IMPORT_BYTES // 5 + 1), 413, "over 2 MiB"),
        ({}, "movieId,rating\n" + "10,4\n" * (MAX_IMPORT_BYTES // 4), 413, "over 2 MiB"),
    ],
    ids=["nothing", "empty-file", "image", "header", "blank-paste", "rating", "2-mib", "far-over"],
)
async def test_a_failed_import_says_why_and_leaves_the_ratings_as_they_were(
    app: TestAppProtocol,
    form: dict[str, str],
    files: bytes | str | None,
    status: int,
    says: str,
) -> None:
    night = await new_night(app)
    ana = await member_of(app, night)
    await ana.post(f"{night}/ratings", form={"set": "30:3.5"})
    response = await ana.post(
        f"{night}/import", form=form, files=upload(files) if files is not None else None
    )
    assert response.status_code == status
    page = parse(await response.get_data(as_text=True))
    assert says in text_of(one(page, ".bring #import-error[role=alert]"))
    assert "open" in one(page, "details.bring").attributes
    assert not page.css("#night-imported")
    assert await my_ratings(ana, night) == stars({30: 3.5})


async def test_only_a_member_imports(app: TestAppProtocol) -> None:
    night = await new_night(app)
    await member_of(app, night)
    stranger = app.test_client()
    refused = await stranger.post(f"{night}/import", form={"paste": IMDB_FILE})
    assert refused.status_code == 403
    page = parse(await (await stranger.get(night)).get_data(as_text=True))
    assert texts(page, ".members li") == ["Ana · 0 ratings"]


async def test_a_name_and_an_export_join_a_night_in_one_step(app: TestAppProtocol) -> None:
    night = await new_night(app)
    ben = app.test_client()
    response = await ben.post(f"{night}/join", form={"name": "Ben", "paste": IMDB_FILE})
    assert response.status_code == 200
    assert "HttpOnly" in response.headers["Set-Cookie"]
    page = parse(await response.get_data(as_text=True))
    assert text_of(one(page, ".you strong")) == "Ben"
    assert text_of(one(page, ".imported-summary")).startswith("2 of 3 films found")
    assert await my_ratings(ben, night) == stars({10: 4.5, 50: 4.0})

    # A bad export joins nobody, and the name typed is kept.
    chloe = app.test_client()
    refused = await chloe.post(f"{night}/join", form={"name": "Chloé", "paste": "Film,Stars\n"})
    assert refused.status_code == 400
    page = parse(await refused.get_data(as_text=True))
    assert "Row 1" in text_of(one(page, "#join-error"))
    assert one(page, "#name").attributes["value"] == "Chloé"
    assert "open" in one(page, "details.join-import").attributes
    assert texts(page, ".members li") == ["Ben · 2 ratings"]


# ---- a saved profile ----------------------------------------------------------------------


async def saved_profile(app: TestAppProtocol, ratings: str) -> str:
    """Save `ratings` as a profile, as /rate does; its private path, /me/<token>."""
    response = await app.test_client().post("/me", form={"r": ratings})
    assert response.status_code == 303
    return str(response.headers["Location"])


async def test_a_saved_profiles_link_brings_its_ratings_in_their_place(
    app: TestAppProtocol,
) -> None:
    night = await new_night(app)
    ana = await member_of(app, night)
    await ana.post(f"{night}/ratings", form={"set": "30:3.5"})
    profile = await saved_profile(app, "10:5,20:2.5")
    for link in (f"http://localhost{profile}", profile):
        response = await ana.post(f"{night}/bring", form={"link": link})
        assert response.status_code == 303
        assert await my_ratings(ana, night) == stars({10: 5.0, 20: 2.5})

    await app.test_client().post(f"{profile}/forget", form={"confirm": "yes"})
    for link in (profile, "/me/not-a-token", "/me/a b"):
        refused = await ana.post(f"{night}/bring", form={"link": link})
        assert refused.status_code == 400
        html = await refused.get_data(as_text=True)
        said = text_of(one(parse(html), ".bring .night-error"))
        assert said.startswith("There is no saved profile at this link")
        assert profile.removeprefix("/me/") not in html
    assert await my_ratings(ana, night) == stars({10: 5.0, 20: 2.5})


async def test_a_saved_profile_starts_a_night_and_joins_it_in_one_click(
    app: TestAppProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    profile = await saved_profile(app, "10:5,20:2.5")
    token = profile.removeprefix("/me/")
    ana = app.test_client()
    with caplog.at_level(logging.INFO):
        response = await ana.post("/nights", form={"profile": token, "name": "Ana"})
    assert response.status_code == 303
    night = response.headers["Location"]
    assert night.startswith("/nights/") and token not in night
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("night_member=") and f"Path={night}" in cookie
    assert token not in cookie
    page = parse(await (await ana.get(night)).get_data(as_text=True))
    assert text_of(one(page, ".you strong")) == "Ana"
    assert await my_ratings(ana, night) == stars({10: 5.0, 20: 2.5})
    assert any("POST /nights 303" in record.getMessage() for record in caplog.records)
    assert token not in caplog.text


@pytest.mark.parametrize("written", ["url", "path", "id"])
async def test_a_saved_profile_joins_a_friends_night_from_its_link(
    app: TestAppProtocol, caplog: pytest.LogCaptureFixture, written: str
) -> None:
    night = await new_night(app)
    await member_of(app, night, "Ana")
    token = (await saved_profile(app, "30:4,50:1")).removeprefix("/me/")
    link = {"url": f"https://movies.example{night}/", "path": night, "id": night[8:]}[written]
    ben = app.test_client()
    with caplog.at_level(logging.INFO):
        response = await ben.post(
            "/nights/join", form={"night": link, "name": "Ben", "profile": token}
        )
    assert response.status_code == 303
    assert response.headers["Location"] == night
    assert f"Path={night}" in response.headers["Set-Cookie"]
    assert await my_ratings(ben, night) == stars({30: 4.0, 50: 1.0})
    page = parse(await (await ben.get(night)).get_data(as_text=True))
    assert texts(page, ".members li") == ["Ana · 0 ratings", "Ben (you) · 2 ratings"]
    assert token not in caplog.text


async def test_bad_starts_and_joins_from_a_profile_get_a_page_saying_why(
    app: TestAppProtocol,
) -> None:
    night = await new_night(app)
    profile = await saved_profile(app, "10:4")
    token = profile.removeprefix("/me/")
    client = app.test_client()
    tries = [
        ("/nights", {"profile": token, "name": "  "}, 400, "Please give a name"),
        ("/nights", {"profile": "unknown-token", "name": "Ana"}, 400, "no saved profile"),
        ("/nights/join", {"night": "not a link", "name": "Ana"}, 400, "the night's link"),
        ("/nights/join", {"night": "https://x/rate?r=1:4", "name": "Ana"}, 400, "the night's link"),
        ("/nights/join", {"night": "/nights/no-such-night", "name": "Ana"}, 404, "no such"),
        ("/nights/join", {"night": night, "name": "x" * 41, "profile": token}, 400, "40"),
        ("/nights/join", {"night": night, "name": "Ana", "profile": "nope"}, 400, "no saved"),
    ]
    for path, form, status, says in tries:
        response = await client.post(path, form=form)
        assert response.status_code == status, (form, await response.get_data(as_text=True))
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
        html = await response.get_data(as_text=True)
        assert says.lower() in text_of(one(parse(html), "main")).lower(), form
        assert token not in html
    await client.post(f"{profile}/forget", form={"confirm": "yes"})
    forgotten = await client.post("/nights", form={"profile": token, "name": "Ana"})
    assert forgotten.status_code == 400
    assert texts(parse(await (await client.get(night)).get_data(as_text=True)), ".members li") == []


async def test_the_profile_card_posts_what_the_routes_take(app: TestAppProtocol) -> None:
    """profile_nights.html, as the /me page includes it: each form, filled in, does its job."""
    token = (await saved_profile(app, "20:4.5")).removeprefix("/me/")
    night = await new_night(app)
    async with app.app.test_request_context(f"/me/{token}"):  # type: ignore[attr-defined]
        card = parse(render("partials/profile_nights.html", token=token))
    start, join = card.css("form")
    for form in (start, join):
        assert form.attributes["method"] == "post"
        assert "?" not in (form.attributes["action"] or "") and token not in str(form.attributes)
        for field in form.css("input:not([type=hidden])"):
            assert one(card, f"label[for={field.attributes['id']}]")
    filled = {"name": "Ana", "night": night}
    for form, who in ((start, "Ana"), (join, "Ben")):
        fields = {
            str(i.attributes["name"]): i.attributes.get("value")
            or filled[str(i.attributes["name"])]
            for i in form.css("input")
        }
        fields["name"] = who
        browser = app.test_client()
        response = await browser.post(str(form.attributes["action"]), form=fields)
        assert response.status_code == 303, await response.get_data(as_text=True)
        assert await my_ratings(browser, response.headers["Location"]) == stars({20: 4.5})
    assert text_of(one(start, "button")) == "Start a movie night"
    assert text_of(one(join, "button")) == "Join the night"
