"""The ASGI layers around the Quart app: unsafe requests refused, compression, security headers.

Each is a small class with one job; `app.web.install` stacks them. They work on raw ASGI
messages, below Quart, so that they also cover errors, static files and WebSocket requests.
"""

from __future__ import annotations

from collections.abc import Iterable

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
_RAW_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]
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


class CompressWhenAccepted:
    """ASGI middleware: requests that accept gzip or Brotli go through `compressed`, others not.

    The compressing layers cost about a fifth of the cached answers' throughput even when
    they end up sending the body as it is; a client that accepts neither encoding skips them.
    The compressor reads Accept-Encoding as a substring, so it is handed the one coding
    chosen here by the RFC's rules instead of the client's header.
    """

    def __init__(self, plain: ASGIFramework, compressed: ASGIFramework) -> None:
        self.plain = plain
        self.compressed = compressed

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Route the request by the coding its Accept-Encoding header prefers."""
        if scope["type"] != "http":
            await self.plain(scope, receive, send)
            return
        coding = preferred_coding(_header(scope["headers"], b"accept-encoding"))
        if coding is None:
            await self.plain(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        chosen = {**scope, "headers": [*headers, (b"accept-encoding", coding.encode())]}
        await self.compressed(chosen, receive, send)  # type: ignore[arg-type]


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
                message["headers"] = [*message["headers"], *_RAW_SECURITY_HEADERS]
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
        *_RAW_SECURITY_HEADERS,
    ]
    if close:
        headers.append((b"connection", b"close"))
    return headers, body


class MarkLastChunk:
    """ASGI middleware that marks a body's last chunk as last, where Quart sends an empty one after.

    Quart sends a page as one chunk saying "more to come" and then an empty final chunk; the
    compressor decides on the first chunk and so compressed every answer, however small. Holding
    each chunk back until the next one arrives lets a one-chunk body go out as complete.
    """

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Pass the request on; send each body chunk once the next one shows whether it was last."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: list[bytes] = []  # the body of the chunk not sent yet, if any

        async def send_when_known(message: ASGISendEvent) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            if held:
                previous = held.pop()
                if not more and not body:  # the empty last chunk: the held one was last
                    await send(
                        HTTPResponseBodyEvent(type=message["type"], body=previous, more_body=False)
                    )
                    return
                await send(
                    HTTPResponseBodyEvent(type=message["type"], body=previous, more_body=True)
                )
            if more:
                held.append(body)
            else:
                await send(message)

        await self.app(scope, receive, send_when_known)
