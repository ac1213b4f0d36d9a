"""Hostile or unusual HTTP from a client, against `movierec serve` on 127.0.0.1 (issue 24).

Run with `make faults`. Requests go over raw sockets where the bytes on the wire are the
point: a smuggled second request, a WebSocket handshake, a forged Host header. Every read
is bounded in time; the one server is stopped at the end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from selectolax.lexbor import LexborHTMLParser

from tests import live
from tests.conftest import make_zip
from tests.tiny import TINY_MOVIES, TINY_RATINGS

pytestmark = pytest.mark.faults

READ_SECONDS = 5.0
"""How long a raw read waits for the server to answer or close."""
BIG_FILE = "/static/vendor/htmx.min.js"
"""An answer well over the 16 KiB from which answers are compressed."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.Server]:
    """One worker serving the tiny release, ready."""
    folder = tmp_path_factory.mktemp("http")
    source = folder / "ml-tiny.zip"
    source.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    with live.serving(source, folder, WORKERS="1") as started:
        ready = live.wait_for(lambda: live.get(started.url("/readyz")).status == 200, 60)
        assert ready, started.output()
        yield started


def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send `data` on a new connection; everything read back, and whether the server closed it.

    Reads until the server closes the connection or sends nothing for READ_SECONDS.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS) as connection:
        connection.sendall(data)
        received = b""
        deadline = time.monotonic() + READ_SECONDS * 2
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk
        return received, False


def statuses(received: bytes) -> list[int]:
    """The status of each HTTP/1.1 answer in `received`, in order."""
    return [
        int(line.split()[1])
        for line in received.split(b"\r\n")
        if line.startswith(b"HTTP/1.1 ") and len(line.split()) >= 2
    ]


def head_of(received: bytes) -> dict[str, str]:
    """The headers of the first answer in `received` (names in lower case)."""
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in head)
    }


SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
    ids=["length-first", "chunked-first"],
)
def test_length_and_chunked_together_is_refused_and_the_connection_closed(
    server: live.Server, lengths: bytes
) -> None:
    request = (
        b"POST /api/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + lengths + b"\r\n0\r\n\r\n" + SMUGGLED
    )
    received, closed = exchange(server.port, request)
    assert statuses(received) == [400], received[:400]
    assert closed, "the connection must be closed after the 400"
    assert head_of(received).get("connection") == "close"
    assert b'"status":"ok"' not in received, "the smuggled request was served"
    assert live.get(server.url("/healthz")).status == 200


@pytest.mark.parametrize("path", ["/", "/api/status", "/nowhere"])
def test_a_websocket_handshake_is_refused_without_a_traceback(
    server: live.Server, path: str
) -> None:
    before = len(server.output())
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    received, _ = exchange(server.port, request)
    assert statuses(received)[:1] in ([400], [426]), received[:400]
    assert head_of(received).get("x-content-type-options") == "nosniff"
    assert live.get(server.url("/healthz")).status == 200
    logged = server.output()[before:]
    assert "Traceback" not in logged and "ERROR" not in logged, logged


@pytest.mark.parametrize(
    ("accepted", "coding"),
    [
        ("br;q=0, gzip;q=0", None),
        ("gzip, br;q=0", "gzip"),
        ("GZIP", "gzip"),
        ("Br", "br"),
        ("*", "br"),
        ("identity", None),
    ],
)
def test_accept_encoding_is_honoured_as_the_rfc_says(
    server: live.Server, accepted: str, coding: str | None
) -> None:
    answer = live.get(server.url(BIG_FILE), {"Accept-Encoding": accepted})
    assert answer.status == 200
    assert answer.headers.get("content-encoding") == coding


def test_the_host_header_is_not_echoed_into_links_or_redirects(server: live.Server) -> None:
    forged = b"Host: elsewhere.example\r\nConnection: close\r\n\r\n"
    received, _ = exchange(server.port, b"GET /api//docs HTTP/1.1\r\n" + forged)
    assert statuses(received) == [308]
    assert head_of(received)["location"] == "/api/docs"
    received, _ = exchange(server.port, b"GET /api/docs HTTP/1.1\r\n" + forged)
    assert statuses(received) == [200]
    page = LexborHTMLParser(received.split(b"\r\n\r\n", 1)[1].decode())
    assert page.css("main section.operation"), "the reference page itself"
    assert b"elsewhere" not in received
