"""The ASGI layers around the Quart app: unsafe requests refused, compression, security headers.

Each is a small class with one job; `app.web.install` stacks them. They work on raw ASGI
messages, below Quart, so that they also cover errors, static files and WebSocket requests.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from typing import Any

import brotli
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Scope,
    WebsocketResponseBodyEvent,
    WebsocketResponseStartEvent,
)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
RAW_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]
"""SECURITY_HEADERS as ASGI sends them, for the layers that answer on their own."""
BROTLI_QUALITY = 4
"""Brotli's quality 4 gets most of the gain of 11 for a few percent of its cost per answer."""
GZIP_LEVEL = 6
# For a fragment compressed per request (answer cache off): the usual list of films (16 KB)
# takes 0.17 ms at quality 1 against 0.6-0.9 at 4, for 2,358 bytes against 2,041.
BROTLI_FAST_QUALITY = 1
GZIP_FAST_LEVEL = 1
COMPRESSIONS = ("br", "gzip")
"""The content codings the server can send, best first (used to break a tie in q-values)."""
# RFC 9110 12.5.3: "x-gzip" is to be taken as "gzip".
_ALIASES = {"x-gzip": "gzip"}
AMBIGUOUS_LENGTH = (
    "A request may not carry both Content-Length and Transfer-Encoding (RFC 9112, 6.3)."
)
NO_WEBSOCKETS = "This server has no WebSocket endpoints; use HTTP requests."


def preferred_coding(accept_encoding: str | None) -> str | None:
    """The coding of COMPRESSIONS to send for this Accept-Encoding header, None for none.

    As RFC 9110 12.5.3 reads: codings are case-insensitive, a q-value weighs each one and
    q=0 means "not acceptable", "*" stands for every coding not named. The highest weight
    wins; a tie goes to the first in COMPRESSIONS. No header at all gets no compression: a
    client that says nothing is most often a script that would not decode it.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        name = coding.strip().lower()
        if name:
            name = _ALIASES.get(name, name)
            weights[name] = max(weights.get(name, 0.0), _q_value(parameters))
    anything = weights.get("*", 0.0)

    def weight(name: str) -> float:
        return weights.get(name, anything)

    best = max(COMPRESSIONS, key=weight)  # the first of equals: the server's preference
    return best if weight(best) > 0 else None


def _q_value(parameters: str) -> float:
    """The q of `;q=0.5` parameters: 1 when absent, 0 when it is not a number from 0 to 1."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0.0 <= weight <= 1.0 else 0.0
    return 1.0


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Every value of header `name`, joined by commas as RFC 9110 5.3 allows (None if absent)."""
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None


class SecurityHeaders:
    """ASGI middleware that adds SECURITY_HEADERS to every response, errors and files included.

    Added to the raw header list as the response starts: a fraction of the cost of setting
    them one by one on each Response object, which showed in the profile of cached answers.
    """

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Pass the request on; add the headers to the start of an HTTP response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *RAW_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RefuseUnsafeRequests:
    """ASGI middleware, outermost: refuses what Hypercorn lets through and the app must not see.

    A request with both Content-Length and Transfer-Encoding gets 400 and the connection is
    closed (RFC 9112 6.3): h11 reads such a body as chunked, so bytes a front proxy counted
    by Content-Length would otherwise be served as a second, smuggled request. A WebSocket
    handshake gets 400 before Quart sees it: there is no WebSocket route, and Quart's error
    handlers, written for HTTP requests, failed on it with a 500 and two tracebacks.
    """

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Answer an unsafe request with 400; pass anything else on."""
        if scope["type"] == "websocket":
            await receive()  # the handshake's websocket.connect
            headers, body = _refusal(NO_WEBSOCKETS, close=False)
            await send(
                WebsocketResponseStartEvent(
                    type="websocket.http.response.start", status=400, headers=headers
                )
            )
            await send(
                WebsocketResponseBodyEvent(
                    type="websocket.http.response.body", body=body, more_body=False
                )
            )
            return
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                headers, body = _refusal(AMBIGUOUS_LENGTH, close=True)
                await send(
                    HTTPResponseStartEvent(
                        type="http.response.start", status=400, headers=headers, trailers=False
                    )
                )
                await send(
                    HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False)
                )
                return
        await self.app(scope, receive, send)


def _refusal(message: str, close: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a plain-text 400 that says `message`, with SECURITY_HEADERS."""
    body = (message + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *RAW_SECURITY_HEADERS,
    ]
    if close:
        headers.append((b"connection", b"close"))
    return headers, body


def encode(body: bytes, coding: str, kept: bool = False) -> bytes:
    """`body` in content coding `coding` ("br" or "gzip", one of COMPRESSIONS), whole.

    `kept`: the result is kept and sent many times (the answer cache's fragments), so worth
    the denser settings; otherwise it is made per request, and the fast ones serve it.
    """
    if coding == "br":
        quality = BROTLI_QUALITY if kept else BROTLI_FAST_QUALITY
        return bytes(brotli.compress(body, mode=brotli.MODE_TEXT, quality=quality))
    # mtime=0: the same body always gives the same bytes (and no clock read per answer).
    return gzip.compress(body, GZIP_LEVEL if kept else GZIP_FAST_LEVEL, mtime=0)


class Compress:
    """ASGI middleware: bodies from `minimum_size` bytes go in the coding the client prefers.

    The coding is chosen by `preferred_coding` (the RFC's rules, q=0 respected); a client
    that accepts none, or a response that already has a Content-Encoding (an answer the
    Service keeps compressed), passes through untouched. Quart sends a body as one chunk
    saying "more to come" and then an empty last one, so chunks are held until the body is
    complete (and compressed whole, with its length) or reaches STREAM_AFTER bytes (and is
    compressed chunk by chunk from there).
    """

    def __init__(self, app: ASGIFramework, minimum_size: int) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Pass the request on; compress the body of its response if it is worth it."""
        coding = (
            preferred_coding(_header(scope["headers"], b"accept-encoding"))
            if scope["type"] == "http"
            else None
        )
        if coding is None:
            await self.app(scope, receive, send)
            return
        await _Compressing(send, coding, self.minimum_size).run(self.app, scope, receive)


class _Compressing:
    """One response on its way through `Compress`: its start held, then its body."""

    def __init__(self, send: ASGISendCallable, coding: str, minimum_size: int) -> None:
        self.send = send
        self.coding = coding
        self.minimum_size = minimum_size
        self.start: HTTPResponseStartEvent | None = None
        self.held: list[bytes] = []
        self.size = 0  # of the chunks held
        self.passing = False  # as it is: already encoded, or decided too small
        self.stream: Any = None  # the compressor of a body longer than one chunk

    async def run(self, app: ASGIFramework, scope: Scope, receive: ASGIReceiveCallable) -> None:
        """Run `app` with this response's send."""
        await app(scope, receive, self.send_body)

    async def send_body(self, message: ASGISendEvent) -> None:
        """Hold, compress or pass each message of the response."""
        if message["type"] == "http.response.start":
            encoded = any(name.lower() == b"content-encoding" for name, _ in message["headers"])
            if encoded:
                self.passing = True
                await self.send(message)
            else:
                self.start = message
            return
        if self.passing or message["type"] != "http.response.body":
            await self.send(message)
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        if self.stream is not None:
            await self.send(self._chunk(body, more))
            return
        self.held.append(body)
        self.size += len(body)
        if more and self.size < STREAM_AFTER:
            return
        size = self.size
        whole = b"".join(self.held)
        self.held.clear()
        assert self.start is not None
        start, self.start = self.start, None
        if not more and size < self.minimum_size:
            self.passing = True
            await self.send(start)
            await self.send(
                HTTPResponseBodyEvent(type=message["type"], body=whole, more_body=False)
            )
            return
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in _RECOMPUTED]
        headers.append((b"content-encoding", self.coding.encode()))
        headers.append((b"vary", _vary_with_encoding(start["headers"])))
        if more:
            self.stream = _compressor(self.coding)
            start["headers"] = headers
            await self.send(start)
            await self.send(self._chunk(whole, more=True))
            return
        body = encode(whole, self.coding)
        start["headers"] = [*headers, (b"content-length", str(len(body)).encode())]
        await self.send(start)
        await self.send(_last(body))

    def _chunk(self, body: bytes, more: bool) -> HTTPResponseBodyEvent:
        """The next chunk of a streamed body, compressed (and the stream ended if it is last)."""
        if self.coding == "br":
            out = self.stream.process(body) + (
                self.stream.flush() if more else self.stream.finish()
            )
        else:
            out = self.stream.compress(body) + self.stream.flush(
                zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH
            )
        return HTTPResponseBodyEvent(type="http.response.body", body=out, more_body=more)


def _last(body: bytes) -> HTTPResponseBodyEvent:
    """A response's whole (or last) body."""
    return HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False)


STREAM_AFTER = 256 * 1024
"""Bytes of a body held back to compress it whole; a longer one is compressed as it comes."""
# The headers a compressed response states again: its length and what it varies with.
_RECOMPUTED = {b"content-length", b"vary"}


def _compressor(coding: str) -> Any:
    """A streaming compressor for `coding`, set as `encode` sets the whole-body one."""
    if coding == "br":
        return brotli.Compressor(mode=brotli.MODE_TEXT, quality=BROTLI_QUALITY)
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing


def _vary_with_encoding(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The response's Vary values with Accept-Encoding added (once)."""
    vary = _header(headers, b"vary")
    if vary is None:
        return b"Accept-Encoding"
    names = {name.strip().lower() for name in vary.split(",")}
    return (vary if "accept-encoding" in names else f"{vary}, Accept-Encoding").encode("latin-1")
