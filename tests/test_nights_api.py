"""The movie nights' JSON API, as the issue lists it, on SQLite and on PostgreSQL.

Through the app's test client, with the tiny release (films 10-60) and a real database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app import create_app
from app.config import Settings
from app.engine import MAX_MEMBERS
from tests.conftest import wait_until_settled
from tests.live import free_port

if TYPE_CHECKING:  # pytest would take a Test* class in the module for tests to collect
    from quart.typing import TestClientProtocol


@pytest.fixture
async def client(
    settings: Settings, tiny_zip: Path, database_url: str
) -> AsyncIterator[TestClientProtocol]:
    """A ready app on the tiny release, its nights in a fresh database; 5 starts an hour."""
    app = create_app(
        settings.replace(source=str(tiny_zip), database_url=database_url, night_create_limit=5)
    )
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        yield test_app.test_client()


async def start(client: TestClientProtocol) -> str:
    """A new night's id."""
    response = await client.post("/api/nights")
    assert response.status_code == 201, await response.get_data()
    return str((await response.get_json())["id"])


async def join(client: TestClientProtocol, night: str, name: str) -> tuple[str, str]:
    """A new member's id and token."""
    response = await client.post(f"/api/nights/{night}/members", json={"name": name})
    assert response.status_code == 201, await response.get_data()
    body = await response.get_json()
    return body["member_id"], body["token"]


def bearer(token: str) -> dict[str, str]:
    """The header that carries a member's token."""
    return {"Authorization": f"Bearer {token}"}


async def put_ratings(
    client: TestClientProtocol, night: str, member: str, token: str, ratings: list[Any]
) -> Any:
    """PUT a member's ratings, as (movie_id, rating) pairs."""
    return await client.put(
        f"/api/nights/{night}/members/{member}/ratings",
        json={"ratings": [{"movie_id": m, "rating": r} for m, r in ratings]},
        headers=bearer(token),
    )


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The API's error object."""
    assert set(body) == {"error"}, body
    return dict(body["error"])


async def test_a_night_starts_with_201_its_id_page_and_expiry(client: TestClientProtocol) -> None:
    response = await client.post("/api/nights")
    assert response.status_code == 201
    body = await response.get_json()
    assert set(body) == {"id", "url", "expires_at"}
    assert body["url"].endswith(body["id"]) and len(body["id"]) == 22
    assert response.headers["Location"] == f"/api/nights/{body['id']}"
    night = await (await client.get(f"/api/nights/{body['id']}")).get_json()
    assert night["members"] == [] and night["expires_at"] == body["expires_at"]


async def test_members_join_with_201_and_a_thirteenth_gets_409(client: TestClientProtocol) -> None:
    night = await start(client)
    joined = [await join(client, night, f"Friend {i}") for i in range(MAX_MEMBERS)]
    response = await client.post(f"/api/nights/{night}/members", json={"name": "Late"})
    assert response.status_code == 409
    assert error_of(await response.get_json())["field"] == "name"
    listed = await (await client.get(f"/api/nights/{night}")).get_json()
    assert [m["member_id"] for m in listed["members"]] == [m for m, _ in joined]


async def test_ratings_are_replaced_with_the_members_own_token(client: TestClientProtocol) -> None:
    night = await start(client)
    ana, ana_token = await join(client, night, "Ana")
    _, ben_token = await join(client, night, "Ben")
    await put_ratings(client, night, ana, ana_token, [(10, 4.5), (20, 3)])
    response = await put_ratings(client, night, ana, ana_token, [(30, 5)])
    assert response.status_code == 200
    assert await response.get_json() == {
        "member_id": ana,
        "name": "Ana",
        "ratings": [{"movie_id": 30, "rating": 5.0}],
    }
    refused = await put_ratings(client, night, ana, ben_token, [(10, 0.5)])
    assert refused.status_code == 403
    assert "token" in error_of(await refused.get_json())["message"]
    night_now = await (await client.get(f"/api/nights/{night}")).get_json()
    assert night_now["members"][0]["ratings"] == [{"movie_id": 30, "rating": 5.0}]


async def test_a_change_without_a_token_gets_401(client: TestClientProtocol) -> None:
    night = await start(client)
    ana, _ = await join(client, night, "Ana")
    response = await client.put(f"/api/nights/{night}/members/{ana}/ratings", json={"ratings": []})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_member_leaves_with_204(client: TestClientProtocol) -> None:
    night = await start(client)
    ana, token = await join(client, night, "Ana")
    ben, _ = await join(client, night, "Ben")
    assert (await client.delete(f"/api/nights/{night}/members/{ana}")).status_code == 401
    response = await client.delete(f"/api/nights/{night}/members/{ana}", headers=bearer(token))
    assert response.status_code == 204 and await response.get_data() == b""
    listed = await (await client.get(f"/api/nights/{night}")).get_json()
    assert [m["member_id"] for m in listed["members"]] == [ben]


@pytest.mark.parametrize(
    "path",
    [
        "/api/nights/{id}",
        "/api/nights/{id}/recommendations",
    ],
)
async def test_an_unknown_night_is_a_404_in_json(client: TestClientProtocol, path: str) -> None:
    for night in ("AAAAAAAAAAAAAAAAAAAAAA", "not%20an%20id", "x" * 300):
        response = await client.get(path.format(id=night))
        assert response.status_code == 404
        assert "no such movie night" in error_of(await response.get_json())["message"]
    response = await client.post("/api/nights/AAAAAAAAAAAAAAAAAAAAAA/members", json={"name": "A"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 41}, "name"),
        ({"name": 7}, "name"),
        ({"name": "Ana\u0000"}, "name"),
        ([], "body"),
    ],
)
async def test_a_bad_name_is_a_400_naming_the_field(
    client: TestClientProtocol, body: Any, field: str
) -> None:
    night = await start(client)
    response = await client.post(f"/api/nights/{night}/members", json=body)
    assert response.status_code == 400
    assert error_of(await response.get_json())["field"] == field


@pytest.mark.parametrize(
    ("ratings", "field"),
    [
        ([(999, 4.0)], "ratings"),
        ([(10, 4.2)], "ratings"),
        ([(10, 4.0), (10, 3.0)], "ratings"),
        ([(movie_id, 4.0) for movie_id in range(1, 502)], "ratings"),
    ],
)
async def test_bad_ratings_are_a_400_and_change_nothing(
    client: TestClientProtocol, ratings: list[Any], field: str
) -> None:
    night = await start(client)
    ana, token = await join(client, night, "Ana")
    await put_ratings(client, night, ana, token, [(50, 3.0)])
    response = await put_ratings(client, night, ana, token, ratings)
    assert response.status_code == 400
    assert error_of(await response.get_json())["field"] == field
    listed = await (await client.get(f"/api/nights/{night}")).get_json()
    assert listed["members"][0]["ratings"] == [{"movie_id": 50, "rating": 3.0}]


async def test_bodies_must_be_json(client: TestClientProtocol) -> None:
    night = await start(client)
    response = await client.post(
        f"/api/nights/{night}/members", data="name=Ana", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    response = await client.post(
        f"/api/nights/{night}/members",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(await response.get_json())["field"] == "body"


async def test_films_are_set_aside_and_picked_by_members(client: TestClientProtocol) -> None:
    night = await start(client)
    ana, token = await join(client, night, "Ana")
    response = await client.post(
        f"/api/nights/{night}/set-aside",
        json={"member_id": ana, "movie_id": 30},
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert (await response.get_json())["set_aside"] == [30]
    response = await client.put(
        f"/api/nights/{night}/pick", json={"member_id": ana, "movie_id": 50}, headers=bearer(token)
    )
    assert (await response.get_json())["picked"] == 50
    response = await client.put(
        f"/api/nights/{night}/pick", json={"member_id": ana, "movie_id": 999}, headers=bearer(token)
    )
    assert response.status_code == 400
    assert error_of(await response.get_json())["field"] == "movie_id"
    response = await client.put(
        f"/api/nights/{night}/pick",
        json={"member_id": ana, "movie_id": None},
        headers=bearer(token),
    )
    assert (await response.get_json())["picked"] is None
    response = await client.put(
        f"/api/nights/{night}/pick", json={"member_id": ana, "movie_id": 50}, headers=bearer("x")
    )
    assert response.status_code == 403


async def test_starts_past_the_limit_get_429_with_retry_after(client: TestClientProtocol) -> None:
    for _ in range(5):
        await start(client)
    response = await client.post("/api/nights")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "5 movie nights" in error_of(await response.get_json())["message"]


async def test_the_group_list_names_each_members_match(client: TestClientProtocol) -> None:
    night = await start(client)
    ana, ana_token = await join(client, night, "Ana")
    ben, ben_token = await join(client, night, "Ben")
    await put_ratings(client, night, ana, ana_token, [(10, 5.0)])
    await put_ratings(client, night, ben, ben_token, [(20, 4.0)])
    await client.post(
        f"/api/nights/{night}/set-aside",
        json={"member_id": ana, "movie_id": 50},
        headers=bearer(ana_token),
    )
    response = await client.get(f"/api/nights/{night}/recommendations?n=10")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["strategy"]
    assert [m["member_id"] for m in body["members"]] == [ana, ben]
    films = [film["movie_id"] for film in body["recommendations"]]
    assert films and not {10, 20, 50} & set(films)
    for film in body["recommendations"]:
        assert [m["name"] for m in film["members"]] == ["Ana", "Ben"]
        assert all(0 <= m["match"] <= 1 for m in film["members"])
        assert 0 <= film["score"] <= 1


async def test_without_the_database_nights_answer_503_and_the_rest_works(
    settings: Settings, tiny_zip: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("DATA_DIR cannot be under a file")
    for url in (
        f"sqlite:///{blocker / 'nights.sqlite3'}",
        f"postgresql://night:s3cret@127.0.0.1:{free_port()}/nights",
    ):
        app = create_app(settings.replace(source=str(tiny_zip), database_url=url))
        async with app.test_app() as test_app:
            await wait_until_settled(app)
            client = test_app.test_client()
            response = await client.post("/api/nights")
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            message = error_of(await response.get_json())["message"]
            assert "unavailable" in message and "s3cret" not in message
            assert str(tmp_path) not in message
            assert (await client.get("/api/users/1/recommendations")).status_code == 200


async def test_an_unknown_strategy_is_a_400_naming_it(client: TestClientProtocol) -> None:
    night = await start(client)
    response = await client.get(f"/api/nights/{night}/recommendations?strategy=coin-toss")
    assert response.status_code == 400
    problem = error_of(await response.get_json())
    assert problem["field"] == "strategy" and "coin-toss" in problem["message"]


async def test_with_no_ratings_yet_the_list_is_the_most_popular(
    client: TestClientProtocol,
) -> None:
    night = await start(client)
    await join(client, night, "Ana")
    body = await (await client.get(f"/api/nights/{night}/recommendations?n=3")).get_json()
    assert len(body["recommendations"]) == 3
    assert all(film["members"][0]["match"] is None for film in body["recommendations"])
