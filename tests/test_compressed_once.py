"""A results fragment is compressed once, kept so beside its HTML, and never compressed again.

The coding is the one the client prefers by the RFC's rules (q=0 refuses one); a client that
accepts none gets the HTML as it is. Other answers from 1 KiB are compressed on their way out,
whole or chunk by chunk, and an answer that already has a Content-Encoding passes untouched.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import brotli
import pytest

from app.config import Settings
from app.engine import Recommendations, Service
from app.web.middleware import Compress, encode
from tests.conftest import parse

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

HX = {"HX-Request": "true"}
FRAGMENT = "/?user_id=1&n=3&k=2"


def decoded(body: bytes, coding: str | None) -> bytes:
    """`body` as sent in `coding`, decompressed."""
    if coding == "br":
        return bytes(brotli.decompress(body))
    if coding == "gzip":
        return gzip.decompress(body)
    return body


@pytest.mark.parametrize(
    ("accepted", "coding"),
    [
        ("gzip, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        (None, None),
    ],
)
async def test_a_fragment_goes_in_the_coding_the_client_prefers(
    client: TestClientProtocol, accepted: str | None, coding: str | None
) -> None:
    plain = await (await client.get(FRAGMENT, headers=HX)).get_data()
    assert parse(plain.decode()).css("ol.movies li.movie")
    headers = {**HX, **({"Accept-Encoding": accepted} if accepted else {})}
    for _ in range(2):  # computed, then from the cache
        answer = await client.get(FRAGMENT, headers=headers)
        body = await answer.get_data()
        assert answer.headers.get("Content-Encoding") == coding
        assert int(answer.headers["Content-Length"]) == len(body)
        # Compressed once: decoding once gives the HTML itself.
        assert decoded(body, coding) == plain
        vary = {name.strip() for name in answer.headers["Vary"].split(",")}
        assert {"Accept-Encoding", "HX-Request", "HX-History-Restore-Request"} <= vary
        assert answer.headers["Content-Security-Policy"]


async def test_the_whole_page_is_compressed_on_its_way_out(client: TestClientProtocol) -> None:
    plain = await (await client.get(FRAGMENT)).get_data()
    answer = await client.get(FRAGMENT, headers={"Accept-Encoding": "gzip"})
    assert answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await answer.get_data()) == plain


def fragment_of(answer: Recommendations) -> str:
    """HTML of the fragment's size: a few KB per film."""
    return "".join(f"<li>{movie.title} {movie.score:.3f}</li>" * 100 for movie in answer.movies)


class CountingEncoder:
    """The app's `encode`, counting its calls by coding."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, body: bytes, coding: str, kept: bool) -> bytes:
        self.calls[coding] = self.calls.get(coding, 0) + 1
        return encode(body, coding, kept)


async def test_a_cached_answer_costs_no_compression(settings: Settings, tiny_zip: Path) -> None:
    encoder = CountingEncoder()
    service = Service(settings.replace(source=str(tiny_zip)), fragment_of, encoder)
    service.start()
    await service.loaded()
    html = (await service.recommend(1, n=3, presented=True)).html
    assert html and encoder.calls == {}, "no coding asked, none made"
    weighed = service.cache_info().bytes
    first = await service.recommend(1, n=3, presented=True, coding="br")
    assert first.body is not None and brotli.decompress(first.body) == html.encode()
    assert service.cache_info().bytes > weighed, "the kept bytes are counted"
    for _ in range(3):
        again = await service.recommend(1, n=3, presented=True, coding="br")
        assert again.body == first.body and again.html == html
    assert encoder.calls == {"br": 1}
    squeezed = await service.recommend(1, n=3, presented=True, coding="gzip")
    assert squeezed.body is not None and gzip.decompress(squeezed.body) == html.encode()
    await service.recommend(1, n=3, presented=True, coding="gzip")
    await service.recommend(1, n=3, presented=True, coding="br")
    assert encoder.calls == {"br": 1, "gzip": 1}
    plain = await service.recommend(1, n=3, presented=True)
    assert plain.body is None and plain.html == html
    await service.stop()


async def test_without_the_cache_each_answer_is_compressed_in_its_own_hop(
    settings: Settings, tiny_zip: Path
) -> None:
    encoder = CountingEncoder()
    service = Service(settings.replace(source=str(tiny_zip), result_cache=0), fragment_of, encoder)
    service.start()
    await service.loaded()
    bodies = {(await service.recommend(2, presented=True, coding="br")).body for _ in range(3)}
    assert len(bodies) == 1 and None not in bodies
    assert encoder.calls == {"br": 3}
    assert service.cache_info().entries == 0
    await service.stop()


def test_a_kept_answer_may_be_compressed_harder_and_decodes_the_same() -> None:
    body = b"<li>Toy Story (1995)</li>" * 400
    for coding in ("br", "gzip"):
        kept, passing = encode(body, coding, True), encode(body, coding, False)
        assert decoded(kept, coding) == decoded(passing, coding) == body
        assert len(kept) <= len(passing) < len(body) / 10


class Recorder:
    """An ASGI send that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: Any) -> None:
        self.messages.append(dict(message))

    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def responder(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> Any:
    """An ASGI app that answers with `chunks` as its body, "more to come" on each but the last."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for position, chunk in enumerate(chunks):
            more = position < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


async def run(app: Any, accepted: bytes) -> Recorder:
    """One GET through Compress(app) with Accept-Encoding `accepted`."""
    sent = Recorder()
    scope = {"type": "http", "headers": [(b"accept-encoding", accepted)]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await Compress(app, minimum_size=1024)(scope, receive, sent)  # type: ignore[arg-type]
    return sent


async def test_a_few_chunks_are_compressed_whole_with_their_length() -> None:
    chunks = [bytes([65 + n]) * 4000 for n in range(5)]
    sent = await run(responder(chunks, [(b"content-length", b"20000")]), b"br")
    assert sent.headers()[b"content-encoding"] == b"br"
    assert int(sent.headers()[b"content-length"]) == len(sent.body())
    assert len(sent.messages) == 2
    assert brotli.decompress(sent.body()) == b"".join(chunks)


async def test_a_long_stream_is_compressed_chunk_by_chunk() -> None:
    chunks = [bytes([65 + n]) * 100_000 for n in range(5)]
    for accepted, coding in ((b"br", "br"), (b"gzip", "gzip")):
        sent = await run(responder(chunks, [(b"content-length", b"500000")]), accepted)
        headers = sent.headers()
        assert headers[b"content-encoding"] == coding.encode()
        assert b"content-length" not in headers, "a streamed length is not known ahead"
        assert headers[b"vary"] == b"Accept-Encoding"
        assert len(sent.messages) > 2 and sent.messages[-1]["more_body"] is False
        assert decoded(sent.body(), coding) == b"".join(chunks)


async def test_quarts_one_chunk_and_an_empty_last_one_make_one_compressed_body() -> None:
    html = b"<p>film</p>" * 200
    sent = await run(responder([html, b""], [(b"vary", b"HX-Request")]), b"gzip")
    assert sent.headers()[b"vary"] == b"HX-Request, Accept-Encoding"
    assert int(sent.headers()[b"content-length"]) == len(sent.body())
    assert [m["more_body"] for m in sent.messages[1:]] == [False]
    assert gzip.decompress(sent.body()) == html


async def test_small_and_already_encoded_answers_pass_as_they_are() -> None:
    small = await run(responder([b"ok", b""], []), b"br")
    assert b"content-encoding" not in small.headers() and small.body() == b"ok"
    squeezed = zlib.compress(b"x" * 5000)
    kept = [(b"content-encoding", b"deflate"), (b"content-length", str(len(squeezed)).encode())]
    passed = await run(responder([squeezed], kept), b"br")
    assert passed.headers()[b"content-encoding"] == b"deflate"
    assert passed.body() == squeezed
