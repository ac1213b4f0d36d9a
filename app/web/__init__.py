"""The HTTP layer: handlers that parse, make one call to the Service, and render.

It imports `app.engine` (the Service and its public types) and nothing below it.
"""

from __future__ import annotations

from typing import cast

from brotli_asgi import BrotliMiddleware
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPResponseBodyEvent,
    Scope,
)
from quart import Quart
from starlette.types import ASGIApp

from app.engine import Service
from app.web import api, errors, observe, pages, shared, visitor

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
# Smaller answers go as they are. Compressing the usual 12 KB list of films cost 30% of the
# cached throughput on 127.0.0.1 (wrk: 2,400 -> 1,650 req/s); the answers that matter are
# bigger: htmx (52 KB), the /rate page (65 KB) and its updates with many ratings (280 KB).
COMPRESS_MIN_BYTES = 16 * 1024
# Brotli's quality 4 gets most of the gain of 11 for a few percent of its cost per answer.
COMPRESS_QUALITY = 4
# MAX_RATINGS ratings take about 400 KiB of compact JSON (up to 6 digits of movie id, half
# stars) and 500 KiB as /rate/export writes them; this leaves room and no more.
MAX_BODY_BYTES = 640 * 1024


def install(app: Quart, service: Service, metrics_port: int = 0, access_log: bool = False) -> None:
    """Serve `service` from `app`: routes, error pages, templates, headers, start and stop.

    `metrics_port` serves /metrics to connections on that port alone (0: nowhere);
    `access_log` logs a line per request.
    """
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, SEND_FILE_MAX_AGE_DEFAULT=3600)
    # For the server (app.serve), which adds them to the error answers Hypercorn makes itself.
    app.config["SECURITY_HEADERS"] = SECURITY_HEADERS
    app.extensions["service"] = service
    shared.install_templates(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(visitor.bp)
    errors.register(app)

    @app.before_serving
    async def start_building() -> None:
        service.start()

    @app.after_serving
    async def stop_building() -> None:
        await service.stop()

    # Starlette and Hypercorn spell the same ASGI callable with different types.
    compressed = BrotliMiddleware(
        cast("ASGIApp", MarkLastChunk(app.asgi_app)),
        quality=COMPRESS_QUALITY,
        minimum_size=COMPRESS_MIN_BYTES,
    )
    routed = CompressWhenAccepted(app.asgi_app, cast("ASGIFramework", compressed))
    app.asgi_app = SecurityHeaders(routed)  # type: ignore[method-assign]
    observe.install(app, metrics_port, access_log)


class CompressWhenAccepted:
    """ASGI middleware: requests that accept gzip or Brotli go through `compressed`, others not.

    The compressing layers cost about a fifth of the cached answers' throughput even when
    they end up sending the body as it is; a client that accepts neither encoding skips them.
    """

    def __init__(self, plain: ASGIFramework, compressed: ASGIFramework) -> None:
        self.plain = plain
        self.compressed = compressed

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Route the request by its Accept-Encoding header."""
        accepts = scope["type"] == "http" and any(
            name == b"accept-encoding" and (b"br" in value or b"gzip" in value)
            for name, value in scope["headers"]
        )
        await (self.compressed if accepts else self.plain)(scope, receive, send)


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
