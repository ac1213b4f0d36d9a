"""The web layer through Quart's test client: page vs fragment, every error path, every state.

Pages and fragments are read with an HTML parser: the checks name elements and compare
their text and attributes, so they hold whatever the markup's whitespace or attribute order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import brotli
import pytest
from aiohttp import web
from quart import Response
from selectolax.lexbor import LexborHTMLParser, LexborNode

from app import create_app
from app.config import Settings
from app.recommender import OriginalUserKNN, Profile, Ranking
from app.web.middleware import preferred_coding
from tests.conftest import (
    TINY_MOVIES,
    DatasetServer,
    make_zip,
    one,
    parse,
    text_of,
    texts,
    wait_until_settled,
)

if TYPE_CHECKING:  # pytest would take a Test* class in the module for tests to collect
    from quart.typing import TestClientProtocol

HX = {"HX-Request": "true"}
HTMX_SCRIPT = "/static/vendor/htmx.min.js"
SCRIPTS = [HTMX_SCRIPT, "/static/js/pages.js"]


async def text(response: Response) -> str:
    return await response.get_data(as_text=True)


async def tree(response: Response) -> LexborHTMLParser:
    return parse(await text(response))


def is_full_page(html: str) -> bool:
    """A whole document: the doctype, a title and the masthead."""
    page = parse(html)
    return (
        html.startswith("<!doctype html>")
        and len(page.css("head > title")) == 1
        and len(page.css("header.masthead")) == 1
    )


def top_level(page: LexborHTMLParser) -> list[str]:
    """What a fragment is made of: the tag of each element at its top."""
    assert page.head is not None and page.body is not None
    # A <title> is the one thing htmx takes from a fragment's head: the page's new title.
    assert [node.tag for node in page.head.iter()] in ([], ["title"]), "nothing else in <head>"
    return [node.tag or "" for node in page.body.iter()]


def figures(movie: LexborNode) -> dict[str, str]:
    """A film's figures: the text of each <dd>, by its <dt>."""
    return {
        text_of(one(pair, "dt")): text_of(one(pair, "dd"))
        for pair in movie.css("dl.movie-stats > div")
    }


def alert(page: LexborHTMLParser) -> str:
    """The text of the one alert on the page."""
    return text_of(one(page, "[role=alert]"))


def scripts_are_only_htmx(page: LexborHTMLParser) -> bool:
    """Nothing typed in, or read from the data, became a <script>."""
    return all(node.attributes.get("src") in SCRIPTS for node in page.css("script"))


async def test_page_has_the_form_htmx_and_security_headers(client: TestClientProtocol) -> None:
    response = await client.get("/")
    page = await tree(response)
    assert response.status_code == 200
    assert one(page, "form#search").attributes["hx-get"] == "/"
    assert [s.attributes["src"] for s in page.css("script")] == SCRIPTS
    assert text_of(one(page, "small#user_id_help")) == "4 users, IDs 1–4"
    headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "HX-Request" in headers["Vary"]


async def test_shareable_url_renders_the_full_page_with_results(
    client: TestClientProtocol,
) -> None:
    response = await client.get("/?user_id=1&n=3&k=2")
    html = await text(response)
    page = parse(html)
    assert response.status_code == 200
    assert is_full_page(html)
    titles = texts(page, "ol.movies li.movie h3.movie-title")
    assert titles.index("Heat (1995)") < titles.index("Babylon 5")
    assert one(page, "input#user_id").attributes["value"] == "1"
    assert texts(page, "table.neighbours tbody td a") == ["User 2", "User 3"]
    reasons = texts(page, "ul.reasons li")
    assert reasons and all(r.startswith(("User 2 ", "User 3 ")) for r in reasons)


async def test_htmx_request_gets_only_the_fragment(client: TestClientProtocol) -> None:
    response = await client.get("/?user_id=1&n=3&k=2", headers=HX)
    page = await tree(response)
    assert response.status_code == 200
    assert top_level(page) == ["section", "section"]  # the films and the neighbours, no form
    assert not page.css("form")
    assert text_of(one(page, "h2#recs-title")) == "Top 3 for user 1"
    assert text_of(one(page, "title")) == "Top 3 for user 1 · Movie Night"  # htmx sets it
    first = page.css("ol.movies li.movie")[0]
    assert figures(first)["Match"] == "100%"  # one scale for every algorithm
    assert texts(page, "details.figures td.raw-score")[0] == "2.50"  # the raw figure kept
    assert figures(first)["Rated by"] == "1 of 2 similar"
    assert "HX-Push-Url" not in response.headers
    assert "HX-Request" in response.headers["Vary"]


async def test_history_restore_gets_the_full_page(client: TestClientProtocol) -> None:
    headers = {**HX, "HX-History-Restore-Request": "true"}
    html = await text(await client.get("/?user_id=1", headers=headers))
    assert is_full_page(html)
    page = parse(html)
    one(page, "form#search")
    # Only three unseen films exist, though five were asked for.
    assert text_of(one(page, "h2#recs-title")) == "Top 3 for user 1"
    assert len(page.css("ol.movies li.movie")) == 3


async def test_titles_from_the_data_are_escaped(client: TestClientProtocol) -> None:
    page = await tree(await client.get("/?user_id=1&n=3&k=3", headers=HX))
    assert "<script>alert(1)</script> (2001)" in texts(page, "h3.movie-title")
    assert not page.css("script")


@pytest.mark.parametrize(
    "user_id", ["", "abc", "4.5", "1e3", "٣", "１", "0x10", "1 2", "<script>alert(1)</script>"]
)
async def test_not_a_number_is_a_400(client: TestClientProtocol, user_id: str) -> None:
    for headers in ({}, HX):
        response = await client.get("/", query_string={"user_id": user_id}, headers=headers)
        page = await tree(response)
        assert response.status_code == 400
        assert alert(page) == "Please enter a valid user ID."
        assert scripts_are_only_htmx(page)
        assert page.body is not None and "Traceback" not in page.body.text()
    assert response.headers["HX-Push-Url"] == "false"


@pytest.mark.parametrize("user_id", ["99", "-5", "0", "9" * 40, "+7"])
async def test_a_number_outside_the_data_names_the_range(
    client: TestClientProtocol, user_id: str
) -> None:
    response = await client.get("/", query_string={"user_id": user_id}, headers=HX)
    assert response.status_code == 404
    message = alert(await tree(response))
    assert message == f"User {int(user_id)} is not in the dataset. Valid user IDs are 1 to 4."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n", "0", "Number of recommendations must be a whole number from 1 to 50."),
        ("n", "51", "Number of recommendations must be a whole number from 1 to 50."),
        ("n", "2.5", "Number of recommendations must be a whole number from 1 to 50."),
        ("n", "-3", "Number of recommendations must be a whole number from 1 to 50."),
        ("k", "101", "Number of similar users must be a whole number from 1 to 100."),
        ("k", "abc", "Number of similar users must be a whole number from 1 to 100."),
        ("k", "<b>x</b>", "Number of similar users must be a whole number from 1 to 100."),
    ],
)
async def test_n_and_k_out_of_range_name_the_field(
    client: TestClientProtocol, field: str, value: str, message: str
) -> None:
    response = await client.get("/", query_string={"user_id": "1", field: value})
    page = await tree(response)
    assert response.status_code == 400
    assert alert(page) == message
    # The field at fault is marked, and still holds what was typed, as text.
    marked = one(page, "[aria-invalid=true]")
    assert (marked.tag, marked.id) == ("input", field)
    assert marked.attributes["value"] == value
    assert not page.css("b")


async def test_empty_n_and_k_mean_the_defaults(client: TestClientProtocol) -> None:
    response = await client.get("/?user_id=2&n=&k=", headers=HX)
    assert response.status_code == 200
    page = await tree(response)
    shown = len(page.css("table.neighbours tbody tr"))
    assert text_of(one(page, "h2#neighbours-title")) == f"The {shown} most similar users"


async def test_api_recommendations(client: TestClientProtocol) -> None:
    response = await client.get("/api/users/1/recommendations?n=3&k=2")
    body = await response.get_json()
    assert response.status_code == 200
    assert [m["movie_id"] for m in body["recommendations"]] == [30, 50, 40]
    first = body["recommendations"][0]
    assert first["title"] == "Heat" and first["year"] == 1995
    assert first["score"] == pytest.approx(2.5) and first["neighbours_rated"] == 1
    assert first["avg_rating"] == pytest.approx(3.0) and first["genres"][0] == "Action"
    assert [x["user_id"] for x in body["neighbours"]] == [2, 3]
    assert body["neighbours"][0]["similarity"] == pytest.approx(29 / (34 * 50) ** 0.5)


async def test_api_defaults_and_similar(client: TestClientProtocol) -> None:
    body = await (await client.get("/api/users/2/recommendations")).get_json()
    assert (body["n"], body["k"]) == (5, 5)
    similar = await (await client.get("/api/users/1/similar?k=2")).get_json()
    assert [x["user_id"] for x in similar["neighbours"]] == [2, 3]


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/api/users/abc/recommendations", 400, "Please enter a valid user ID."),
        ("/api/users/99/recommendations", 404, "Valid user IDs are 1 to 4."),
        ("/api/users/1/recommendations?n=0", 400, "from 1 to 50"),
        ("/api/users/1/similar?k=1000", 400, "from 1 to 100"),
        ("/api/users/%C3%A9/similar", 400, "Please enter a valid user ID."),
        ("/api/nope", 404, "not found"),
    ],
)
async def test_api_errors_are_json(
    client: TestClientProtocol, path: str, status: int, fragment: str
) -> None:
    response = await client.get(path)
    body = await response.get_json()
    assert response.status_code == status
    assert body["error"]["status"] == status
    assert fragment.lower() in body["error"]["message"].lower()


async def test_wrong_method_is_a_405(client: TestClientProtocol) -> None:
    assert (await client.post("/api/status")).status_code == 405
    assert (await client.delete("/")).status_code == 405


async def test_unknown_page_is_a_friendly_404(client: TestClientProtocol) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    page = await tree(response)
    assert text_of(one(page, "h1")) == "We could not find that page"
    assert "not found on the server" not in text_of(one(page, "main")), "not the stock text"
    assert [a.attributes["href"] for a in page.css("main ul a")] == ["/", "/rate", "/about"]
    assert text_of(one(page, "title")) == "Page not found · Movie Night"


async def test_health_and_status_when_ready(client: TestClientProtocol) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and (await ready.get_json())["status"] == "ready"
    status = await (await client.get("/api/status")).get_json()
    assert (status["state"], status["users"], status["user_id_range"]) == ("ready", 4, [1, 4])


async def test_unexpected_error_is_a_500_without_traceback(
    client: TestClientProtocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: OriginalUserKNN, profile: Profile, n: int, k: int | None = None) -> Ranking:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(OriginalUserKNN, "rank", broken)
    response = await client.get("/?user_id=1")
    html = await text(response)
    page = parse(html)
    assert response.status_code == 500
    assert text_of(one(page, "main h1")) == "500 · Internal Server Error"
    assert texts(page, "main p")[0].startswith("Something went wrong")
    assert "secret internals" not in html and "Traceback" not in html

    response = await client.get("/api/users/1/recommendations")
    body = await response.get_json()
    assert response.status_code == 500
    assert body["error"]["message"].startswith("Something went wrong")
    assert "secret internals" not in str(body) and "Traceback" not in str(body)


async def test_a_slow_recommendation_does_not_block_health(
    client: TestClientProtocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = OriginalUserKNN.rank
    entered, release = threading.Event(), threading.Event()

    def held(self: OriginalUserKNN, profile: Profile, n: int, k: int | None = None) -> Ranking:
        entered.set()
        release.wait(timeout=10)  # held until the test has seen health answered
        return original(self, profile, n, k)

    monkeypatch.setattr(OriginalUserKNN, "rank", held)
    pending = asyncio.ensure_future(client.get("/api/users/1/recommendations"))
    try:
        assert await asyncio.to_thread(entered.wait, 10), "the recommendation never started"
        started = time.perf_counter()
        assert (await client.get("/healthz")).status_code == 200
        assert time.perf_counter() - started < 0.5
        assert not pending.done(), "the recommendation is still held"
    finally:
        release.set()
    assert (await pending).status_code == 200


def gated_zip_server(dataset_server: DatasetServer, body: bytes) -> tuple[str, asyncio.Event]:
    """Serve `body` slowly, half now and the rest once the returned event is set."""
    release = asyncio.Event()

    async def gated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        await release.wait()
        await response.write(body[len(body) // 2 :])
        return response

    return dataset_server.serve("/ml-tiny.zip", gated), release


async def the_one_not_ready_answer(client: TestClientProtocol, message: str) -> None:
    """Pages, fragments and the API refuse alike before the model: 503, Retry-After, `message`.

    The JSON keeps the API's error shape; htmx gets the alert alone; a page gets the loading
    card, which polls /status on the home page and reloads itself elsewhere.
    """
    api_paths = ["/api/users/1/recommendations", "/api/users/1/similar", "/api/recommendations"]
    for path in api_paths:
        post = path == "/api/recommendations"
        body = {"ratings": [{"movie_id": 10, "rating": 5}]}
        answer = await (client.post(path, json=body) if post else client.get(path))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "3", path
        error = (await answer.get_json())["error"]
        assert error["status"] == 503 and error["message"].startswith(message), path
        assert set(error) == {"status", "message"}, path
    for path in ["/?user_id=1", "/rate?r=10:5", "/rate/search?q=a", "/rate/export?r=10:5"]:
        fragment = await client.get(path, headers=HX)
        assert fragment.status_code == 503 and fragment.headers["Retry-After"] == "3", path
        assert fragment.headers["HX-Push-Url"] == "false", path
        page = await tree(fragment)
        assert top_level(page) == ["div"], path
        assert alert(page).startswith(message), path

        whole = await client.get(path)
        assert whole.status_code == 503 and whole.headers["Retry-After"] == "3", path
        assert "HX-Request" in whole.headers["Vary"]
        page = await tree(whole)
        assert is_full_page(await text(whole)), path
        card = one(page, "main section#app.status")
        polls = path.startswith("/?")
        assert ("hx-get" in card.attributes) == (polls and "loading" in message), path
        # Where the card polls, only a page without JavaScript reloads itself.
        reloads = "head > noscript > meta" if polls else "head > meta"
        assert [m.attributes.get("content") for m in page.css(f"{reloads}[http-equiv]")] == (
            ["3"] if "loading" in message else []
        ), path
    visit = await client.get("/")
    assert visit.status_code == 200 and "Retry-After" not in visit.headers
    one(await tree(visit), "main section#app.status")


async def test_loading_state_polls_and_then_becomes_the_form(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url, release = gated_zip_server(dataset_server, tiny_zip_bytes)
    app = create_app(settings.replace(source=url))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for _ in range(200):
            status = await (await client.get("/api/status")).get_json()
            if status["phase"] == "downloading" and status["done"]:
                break
            await asyncio.sleep(0.01)
        response = await client.get("/")
        page = await tree(response)
        assert response.status_code == 200
        card = one(page, "section#app")
        assert text_of(one(card, "h1")) == "Getting the films ready…"
        assert card.attributes["hx-trigger"] == "every 1s"
        assert text_of(one(card, "p.phase")).startswith("Downloading the MovieLens dataset")
        assert one(card, "progress").attributes["value"] in ("49", "50")
        assert (await client.get("/readyz")).status_code == 503
        await the_one_not_ready_answer(client, "The recommender is still loading")
        poll = await tree(await client.get("/status?user_id=1&n=3&k=2", headers=HX))
        assert one(poll, "section#app").attributes["hx-get"] == "/status?user_id=1&n=3&k=2"

        release.set()
        await wait_until_settled(app)
        ready = await tree(await client.get("/status?user_id=1&n=3&k=2", headers=HX))
        assert not ready.css("[hx-trigger]"), "once ready, nothing polls"
        one(ready, "section#app form#search")
        assert text_of(one(ready, "#results h2#recs-title")) == "Top 3 for user 1"
        assert (await client.get("/readyz")).status_code == 200


async def test_failed_state_explains_and_retries(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.url("/ml-tiny.zip")  # nothing served yet: 404
    app = create_app(settings.replace(source=url))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await wait_until_settled(app)
        card = one(await tree(await client.get("/")), "section#app")
        assert text_of(one(card, "h1")) == "We could not load the movie data"
        assert "404" in text_of(one(card, "p.alert"))
        assert "MOVIELENS_SOURCE" in text_of(one(card, "p.hint"))
        retry_form = one(card, "form")
        assert (retry_form.attributes["method"], retry_form.attributes["action"]) == (
            "post",
            "/retry",
        )
        assert text_of(one(retry_form, "button")) == "Try again"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "404" in (await ready.get_json())["error"]
        await the_one_not_ready_answer(client, "The recommender is unavailable: ")

        dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
        retry = await client.post("/retry", headers=HX)
        assert retry.status_code == 200
        assert one(await tree(retry), "section#app").attributes["hx-trigger"] == "every 1s"
        await wait_until_settled(app)
        assert (await client.get("/readyz")).status_code == 200
        plain = await client.post("/retry")
        assert plain.status_code == 303 and plain.headers["Location"] == "/"


async def test_missing_column_fails_with_a_clear_message(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(make_zip({"ratings.csv": "userId,movieId\n1,2\n", "movies.csv": TINY_MOVIES}))
    app = create_app(settings.replace(source=str(path)))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        status = await (await test_app.test_client().get("/api/status")).get_json()
    assert status["state"] == "failed"
    assert "lacks the column(s) rating" in status["error"]


async def test_an_error_in_place_names_its_field_and_the_nav_marks_the_page(
    client: TestClientProtocol,
) -> None:
    response = await client.get("/?user_id=abc", headers=HX)
    page = await tree(response)
    assert response.status_code == 400
    assert one(page, "[role=alert]").attributes["data-field"] == "user_id"
    page = await tree(await client.get("/about"))
    assert texts(page, "nav a[aria-current=page]") == ["About"]
    assert one(page, "a.skip-link").attributes["href"] == "#main"
    assert one(page, "main#main")


async def test_answers_from_1_kib_are_compressed_smaller_ones_are_not(
    client: TestClientProtocol,
) -> None:
    plain = await client.get("/rate?r=10:5,20:3,30:4.5")
    assert "Content-Encoding" not in plain.headers
    squeezed = await client.get("/rate?r=10:5,20:3,30:4.5", headers={"Accept-Encoding": "gzip, br"})
    assert squeezed.headers["Content-Encoding"] == "br"
    assert (
        "Accept-Encoding" in squeezed.headers["Vary"] and "HX-Request" in squeezed.headers["Vary"]
    )
    assert brotli.decompress(await squeezed.get_data()) == await plain.get_data()
    small = await client.get("/healthz", headers={"Accept-Encoding": "gzip, br"})
    assert len(await small.get_data()) < 1024
    assert "Content-Encoding" not in small.headers, "under 1 KiB goes as it is"
    assert small.headers["Content-Security-Policy"]  # still behind the security headers
    films = await client.get("/?user_id=1&n=3&k=2", headers={**HX, "Accept-Encoding": "gzip, br"})
    assert films.headers["Content-Encoding"] == "br", "a list of films is compressed"
    assert films.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, None),
        ("", None),
        ("gzip, br", "br"),
        ("br;q=0, gzip;q=0", None),
        ("gzip, br;q=0", "gzip"),
        ("GZIP", "gzip"),
        ("Br", "br"),
        ("x-gzip", "gzip"),
        ("*", "br"),
        ("*;q=0", None),
        ("br;q=0, *", "gzip"),
        ("gzip;q=0.9, br;q=0.5", "gzip"),
        ("br ; Q=0.001", "br"),
        ("identity", None),
        ("deflate, compress", None),
        ("gzip;q=2", None),
        ("gzip;q=nope", None),
    ],
)
def test_accept_encoding_is_read_by_the_rfc(header: str | None, coding: str | None) -> None:
    assert preferred_coding(header) == coding


async def test_the_coding_asked_for_is_the_one_sent(client: TestClientProtocol) -> None:
    path = "/rate?r=10:5,20:3,30:4.5"
    for header, expected in (("gzip, br;q=0", "gzip"), ("GZIP", "gzip"), ("Br", "br")):
        answer = await client.get(path, headers={"Accept-Encoding": header})
        assert answer.headers.get("Content-Encoding") == expected, header
    refused = await client.get(path, headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


async def test_a_redirect_names_no_host(client: TestClientProtocol) -> None:
    moved = await client.get("/api//docs", headers={"Host": "elsewhere.example"})
    assert moved.status_code == 308 and moved.headers["Location"] == "/api/docs"
    docs = await client.get("/api/docs", headers={"Host": "elsewhere.example"})
    page = await tree(docs)
    assert "elsewhere" not in text_of(one(page, "main"))
    assert not [node for node in page.css("[href]") if "elsewhere" in str(node.attributes["href"])]
