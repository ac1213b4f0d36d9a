"""The home page's results fragment is answered before Quart, exactly as Quart answers it.

`app.web.fragments` answers an htmx request for a known user's results itself, from the
answer cache or computed. The route, asked the same through a query the layer leaves alone
(a percent-encoded digit), must give the same bytes and headers (but the request id); both
are counted and logged alike, and anything the layer does not answer (a page, an error,
another coding) still reaches the route.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import brotli
import pytest

from app import logs, metrics
from app.config import Settings
from app.web.fragments import ROUTE
from app.web.observe import REQUEST_ID_HEADER
from tests.conftest import parse, wait_until_settled
from tests.test_compressed_once import decoded
from tests.test_prometheus import samples, value

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

FRAGMENT = "/?user_id=1&n=3&k=2"
# The same query with its "1" percent-encoded: the route reads it alike, the layer not at all.
QUOTED = "/?user_id=%31&n=3&k=2"
ASKED = {"HX-Request": "true", "Accept-Encoding": "gzip, br"}


def headers_but_the_id(answer: object) -> list[tuple[str, str]]:
    """A response's headers without its request id, in order."""
    return [
        (name.lower(), item)
        for name, item in answer.headers.items()  # type: ignore[attr-defined]
        if name.lower() != REQUEST_ID_HEADER.lower()
    ]


async def html_of(answer: object) -> str:
    """A response's body, decoded from the coding it was sent in."""
    body = await answer.get_data()  # type: ignore[attr-defined]
    coding = answer.headers.get("Content-Encoding")  # type: ignore[attr-defined]
    return decoded(body, coding).decode()


def hits() -> float:
    """The answer cache's hits counted so far in this process."""
    return value(
        samples(metrics.exposition().decode()), "movierec_answer_cache_lookups_total", result="hit"
    )


async def test_a_fragment_is_sent_as_the_route_sends_it(client: TestClientProtocol) -> None:
    # Computed by the layer first, then found in the cache, then asked of the route.
    computed = await client.get(FRAGMENT, headers=ASKED)
    body = await computed.get_data()
    assert computed.status_code == 200
    before = hits()
    kept = await client.get(FRAGMENT, headers=ASKED)
    assert hits() - before == 1
    assert kept.status_code == 200
    assert await kept.get_data() == body
    assert headers_but_the_id(kept) == headers_but_the_id(computed)
    assert kept.headers["Content-Encoding"] == "br"
    html = brotli.decompress(body).decode()
    assert len(parse(html).css("ol.movies li.movie")) == 3
    # Each answer has its own id.
    assert kept.headers[REQUEST_ID_HEADER] != computed.headers[REQUEST_ID_HEADER]
    # The route, asked the same through a query the layer leaves alone, agrees.
    routed = await client.get(QUOTED, headers=ASKED)
    assert await routed.get_data() == body
    assert headers_but_the_id(routed) == headers_but_the_id(kept)


async def test_a_fragment_keeps_the_clients_request_id(client: TestClientProtocol) -> None:
    computed = await client.get(FRAGMENT, headers={**ASKED, REQUEST_ID_HEADER: "trace-41"})
    assert computed.headers[REQUEST_ID_HEADER] == "trace-41"
    kept = await client.get(FRAGMENT, headers={**ASKED, REQUEST_ID_HEADER: "trace-42"})
    assert kept.headers[REQUEST_ID_HEADER] == "trace-42"


async def test_a_fragment_is_counted_under_its_route(client: TestClientProtocol) -> None:
    name = "movierec_http_requests_total"
    ok = {"route": ROUTE, "method": "GET", "status": "200"}
    before = value(samples(metrics.exposition().decode()), name, **ok)
    for _ in range(3):
        assert (await client.get(FRAGMENT, headers=ASKED)).status_code == 200
    after = value(samples(metrics.exposition().decode()), name, **ok)
    assert after - before == 3


async def test_what_the_layer_does_not_serve_reaches_the_route(
    client: TestClientProtocol,
) -> None:
    await client.get(FRAGMENT, headers=ASKED)
    # The whole page, asked for the same query, is the page (with its form), not the fragment.
    page = await client.get(FRAGMENT, headers={"Accept-Encoding": "gzip, br"})
    assert page.status_code == 200
    assert parse(await html_of(page)).css("form")
    # A history restore gets the page too.
    restore = await client.get(FRAGMENT, headers={**ASKED, "HX-History-Restore-Request": "true"})
    assert parse(await html_of(restore)).css("form")
    # An unknown user or a bad count is the route's error, whatever the cache holds.
    unknown = await client.get("/?user_id=999&n=3&k=2", headers=ASKED)
    assert unknown.status_code == 404
    bad = await client.get("/?user_id=1&n=0&k=2", headers=ASKED)
    assert bad.status_code == 400
    # A client that accepts no coding gets the HTML as it is.
    plain = await client.get(FRAGMENT, headers={"HX-Request": "true"})
    assert "Content-Encoding" not in plain.headers
    assert parse((await plain.get_data()).decode()).css("ol.movies li.movie")


async def test_with_the_answer_cache_off_every_fragment_is_computed(
    settings: Settings, tiny_zip: Path
) -> None:
    from app import create_app

    app = create_app(settings.replace(source=str(tiny_zip), result_cache=0))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        client = test_app.test_client()
        before = hits()
        first = await client.get(FRAGMENT, headers=ASKED)
        second = await client.get(FRAGMENT, headers=ASKED)
        routed = await client.get(QUOTED, headers=ASKED)
        assert await first.get_data() == await second.get_data() == await routed.get_data()
        assert headers_but_the_id(first) == headers_but_the_id(routed)
        assert hits() == before


async def test_a_fragment_has_the_routes_access_line(
    settings: Settings, tiny_zip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from app import create_app

    app = create_app(settings.replace(source=str(tiny_zip), access_log=True))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        client = test_app.test_client()
        with caplog.at_level(logging.INFO, logger=logs.ACCESS_LOGGER):
            for path in (FRAGMENT, FRAGMENT, QUOTED):
                assert (await client.get(path, headers=ASKED)).status_code == 200
    lines = [
        (r.method, r.path, r.route, r.status)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == logs.ACCESS_LOGGER
    ]
    assert lines == [("GET", ROUTE, ROUTE, 200)] * 3
