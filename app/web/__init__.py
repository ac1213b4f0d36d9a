"""The HTTP layer: handlers that parse, make one call to the Service, and render.

It imports `app.engine` (the Service and its public types) and nothing below it.
"""

from __future__ import annotations

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)
from quart import Quart

from app.engine import Service
from app.web import api, errors, pages, shared, visitor

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
# MAX_RATINGS ratings take about 25 KiB of JSON; this leaves room and no more.
MAX_BODY_BYTES = 64 * 1024


def install(app: Quart, service: Service) -> None:
    """Serve `service` from `app`: routes, error pages, templates, headers, start and stop."""
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, SEND_FILE_MAX_AGE_DEFAULT=3600)
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

    app.asgi_app = SecurityHeaders(app.asgi_app)  # type: ignore[method-assign]


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
