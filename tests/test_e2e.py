"""End to end on the real ml-latest-small, downloaded over loopback by the real fetch code."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.config import Settings
from tests.conftest import (
    DatasetServer,
    one,
    parse,
    require_real_zip,
    text_of,
    wait_until_settled,
)

pytestmark = pytest.mark.real_data


async def test_real_dataset_over_loopback(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    url = dataset_server.serve_bytes("/ml-latest-small.zip", require_real_zip().read_bytes())
    app = create_app(settings.replace(source=url))
    started = time.perf_counter()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await wait_until_settled(app, timeout=60)
        elapsed = time.perf_counter() - started
        status = await (await client.get("/api/status")).get_json()
        assert status["state"] == "ready", status
        assert (status["users"], status["ratings"], status["user_id_range"]) == (
            610,
            100836,
            [1, 610],
        )
        assert elapsed < 30, f"ready after {elapsed:.1f}s"

        body = await (await client.get("/api/users/1/recommendations?n=10&k=5")).get_json()
        picks = body["recommendations"]
        assert len(picks) == 10
        scores = [p["score"] for p in picks]
        assert scores == sorted(scores, reverse=True)
        assert all(p["title"] and 0.5 <= p["avg_rating"] <= 5 for p in picks)
        assert [n["user_id"] for n in body["neighbours"]] == [266, 313, 368, 57, 91]

        page = await client.get("/?user_id=42&n=5&k=5")
        assert page.status_code == 200
        assert len(parse(await page.get_data(as_text=True)).css("ol.movies li.movie")) == 5
        missing = await client.get("/?user_id=611", headers={"HX-Request": "true"})
        assert missing.status_code == 404
        alert = one(parse(await missing.get_data(as_text=True)), "[role=alert]")
        assert text_of(alert) == "User 611 is not in the dataset. Valid user IDs are 1 to 610."

    assert dataset_server.hits["/ml-latest-small.zip"] == 1
    again = create_app(settings.replace(source=url))
    async with again.test_app():
        await wait_until_settled(again, timeout=60)
        assert again.extensions["service"].ready
    assert dataset_server.hits["/ml-latest-small.zip"] == 1, "the second start must use the cache"
