"""The web layer through Quart's test client: page vs fragment, every error path, every state."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from app import create_app
from app.config import Settings
from tests.conftest import DatasetServer, wait_until_settled

HX = {"HX-Request": "true"}


async def text(response) -> str:  # type: ignore[no-untyped-def]
    return await response.get_data(as_text=True)  # type: ignore[no-any-return]


async def test_page_has_the_form_htmx_and_security_headers(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/")
    body = await text(response)
    assert response.status_code == 200
    assert '<form id="search"' in body and 'hx-get="/"' in body
    assert "/static/vendor/htmx.min.js" in body
    assert "IDs 1–4" in body
    headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "HX-Request" in headers["Vary"]


async def test_shareable_url_renders_the_full_page_with_results(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/?user_id=1&n=3&k=2")
    body = await text(response)
    assert response.status_code == 200
    assert body.startswith("<!doctype html>")
    assert body.index("Heat") < body.index("Babylon 5")
    assert 'value="1"' in body
    assert "User 2" in body and "User 3" in body and "User 4" not in body


async def test_htmx_request_gets_only_the_fragment(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/?user_id=1&n=3&k=2", headers=HX)
    body = await text(response)
    assert response.status_code == 200
    assert "<html" not in body and "<form" not in body
    assert "Top 3 for user 1" in body
    assert "2.50" in body and "1 of 2 similar" in body
    assert "HX-Push-Url" not in response.headers
    assert "HX-Request" in response.headers["Vary"]


async def test_history_restore_gets_the_full_page(client) -> None:  # type: ignore[no-untyped-def]
    headers = {**HX, "HX-History-Restore-Request": "true"}
    body = await text(await client.get("/?user_id=1", headers=headers))
    assert body.startswith("<!doctype html>") and "Top 4 for user 1" not in body
    assert "Top 3 for user 1" in body  # only three unseen films exist


async def test_titles_from_the_data_are_escaped(client) -> None:  # type: ignore[no-untyped-def]
    body = await text(await client.get("/?user_id=1&n=3&k=3", headers=HX))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body


@pytest.mark.parametrize(
    "user_id", ["", "abc", "4.5", "1e3", "٣", "１", "0x10", "1 2", "<script>alert(1)</script>"]
)
async def test_not_a_number_is_a_400(client, user_id: str) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, HX):
        response = await client.get("/", query_string={"user_id": user_id}, headers=headers)
        body = await text(response)
        assert response.status_code == 400
        assert "Please enter a valid user ID." in body
        assert "<script>alert(1)" not in body
        assert "Traceback" not in body
    assert response.headers["HX-Push-Url"] == "false"


@pytest.mark.parametrize("user_id", ["99", "-5", "0", "9" * 40, "+7"])
async def test_a_number_outside_the_data_names_the_range(client, user_id: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/", query_string={"user_id": user_id}, headers=HX)
    assert response.status_code == 404
    assert "is not in the dataset. Valid user IDs are 1 to 4." in await text(response)


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
async def test_n_and_k_out_of_range_name_the_field(  # type: ignore[no-untyped-def]
    client, field: str, value: str, message: str
) -> None:
    response = await client.get("/", query_string={"user_id": "1", field: value})
    body = await text(response)
    assert response.status_code == 400
    assert message in body
    assert f'id="{field}"' in body and 'aria-invalid="true"' in body
    assert "<b>x</b>" not in body


async def test_empty_n_and_k_mean_the_defaults(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/?user_id=2&n=&k=", headers=HX)
    assert response.status_code == 200
    assert "most similar users" in await text(response)


async def test_api_recommendations(client) -> None:  # type: ignore[no-untyped-def]
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


async def test_api_defaults_and_similar(client) -> None:  # type: ignore[no-untyped-def]
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
async def test_api_errors_are_json(client, path: str, status: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.get(path)
    body = await response.get_json()
    assert response.status_code == status
    assert body["error"]["status"] == status
    assert fragment.lower() in body["error"]["message"].lower()


async def test_wrong_method_is_a_405(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.post("/api/status")).status_code == 405
    assert (await client.delete("/")).status_code == 405


async def test_unknown_page_is_a_friendly_404(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/nope")
    assert response.status_code == 404
    assert "Back to recommendations" in await text(response)


async def test_health_and_status_when_ready(client) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and (await ready.get_json())["status"] == "ready"
    status = await (await client.get("/api/status")).get_json()
    assert (status["state"], status["users"], status["user_id_range"]) == ("ready", 4, [1, 4])


async def test_unexpected_error_is_a_500_without_traceback(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = client.app.extensions["engine"]

    def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, "recommend", broken)
    for path in ("/?user_id=1", "/api/users/1/recommendations"):
        response = await client.get(path)
        body = await text(response)
        assert response.status_code == 500
        assert "secret internals" not in body and "Traceback" not in body
        assert "Something went wrong" in body


async def test_a_slow_recommendation_does_not_block_health(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    knn = client.app.extensions["engine"]._model.knn
    original = knn.rank

    def slow(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(knn, "rank", slow)
    pending = asyncio.ensure_future(client.get("/api/users/1/recommendations"))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    assert (await client.get("/healthz")).status_code == 200
    assert time.perf_counter() - started < 0.5
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


async def test_loading_state_polls_and_then_becomes_the_form(  # type: ignore[no-untyped-def]
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
        page = await client.get("/")
        body = await text(page)
        assert page.status_code == 200
        assert "Getting the films ready" in body and 'hx-trigger="every 1s"' in body
        assert "Downloading the MovieLens dataset" in body and "<progress" in body
        assert 'value="50"' in body or 'value="49"' in body
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/?user_id=1")).status_code == 503
        fragment = await client.get("/?user_id=1", headers=HX)
        assert fragment.status_code == 503 and "still loading" in await text(fragment)
        api = await client.get("/api/users/1/recommendations")
        assert api.status_code == 503 and "loading" in (await api.get_json())["error"]["message"]
        poll = await text(await client.get("/status?user_id=1&n=3&k=2", headers=HX))
        assert 'hx-get="/status?user_id=1&amp;n=3&amp;k=2"' in poll

        release.set()
        await wait_until_settled(app)
        ready = await text(await client.get("/status?user_id=1&n=3&k=2", headers=HX))
        assert "every 1s" not in ready
        assert '<form id="search"' in ready and "Top 3 for user 1" in ready
        assert (await client.get("/readyz")).status_code == 200


async def test_failed_state_explains_and_retries(  # type: ignore[no-untyped-def]
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.url("/ml-tiny.zip")  # nothing served yet: 404
    app = create_app(settings.replace(source=url))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await wait_until_settled(app)
        body = await text(await client.get("/"))
        assert "We could not load the movie data" in body
        assert "404" in body and "MOVIELENS_SOURCE" in body and "Try again" in body
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "404" in (await ready.get_json())["error"]
        assert (await client.get("/?user_id=1", headers=HX)).status_code == 503

        dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
        retry = await client.post("/retry", headers=HX)
        assert retry.status_code == 200
        assert 'hx-trigger="every 1s"' in await text(retry)
        await wait_until_settled(app)
        assert (await client.get("/readyz")).status_code == 200
        plain = await client.post("/retry")
        assert plain.status_code == 303 and plain.headers["Location"] == "/"


async def test_missing_column_fails_with_a_clear_message(  # type: ignore[no-untyped-def]
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import TINY_MOVIES, make_zip

    path = tmp_path / "bad.zip"
    path.write_bytes(make_zip({"ratings.csv": "userId,movieId\n1,2\n", "movies.csv": TINY_MOVIES}))
    app = create_app(settings.replace(source=str(path)))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        status = await (await test_app.test_client().get("/api/status")).get_json()
    assert status["state"] == "failed"
    assert "lacks the column(s) rating" in status["error"]
