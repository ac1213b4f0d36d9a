"""Every request named and measured: a request id, the metrics, an access line; /metrics apart.

/metrics is for operators, not the public: it is served only to connections on METRICS_PORT
(a second listening socket in each worker), which serves nothing else; the public port
answers it 404 like any unknown path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Scope,
)
from quart import Quart, Response, request

from app import logs, metrics

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"
"""The route label of requests that matched no URL rule (404s, mostly): paths are unbounded."""

access = logging.getLogger(logs.ACCESS_LOGGER)
_started: ContextVar[float] = ContextVar("request_started")


def install(app: Quart, metrics_port: int = 0, access_log: bool = False) -> None:
    """Give each request an id, count and time it, log it if asked; serve metrics on their port."""

    @app.before_request
    async def start() -> None:
        _started.set(time.perf_counter())
        logs.REQUEST_ID.set(logs.request_id(request.headers.get(REQUEST_ID_HEADER)))

    @app.after_request
    async def finish(response: Response) -> Response:
        seconds = time.perf_counter() - _started.get(time.perf_counter())
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        rid = logs.REQUEST_ID.get()
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
        if access_log:
            log_access(
                request.method,
                request.path,
                route,
                response.status_code,
                seconds,
                request.remote_addr,
            )
        metrics.observe_request(route, request.method, response.status_code, seconds)
        return response

    if metrics_port:
        app.asgi_app = MetricsPort(app.asgi_app, metrics_port)  # type: ignore[method-assign]


def log_access(
    method: str, path: str, route: str, status: int, seconds: float, client: str | None
) -> None:
    """The access line of one answered request."""
    # A saved profile's token is its password: the log shows the route in its place.
    path = route if path.startswith("/me/") else path
    access.info(
        "%s %s %d %.1f ms",
        method,
        path,
        status,
        seconds * 1000,
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client,
        },
    )


class MetricsPort:
    """ASGI middleware: connections to `port` get /metrics and nothing else; others pass on."""

    def __init__(self, app: ASGIFramework, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Answer a request on the metrics port; pass any other on."""
        if scope["type"] != "http" or (scope.get("server") or ("", None))[1] != self.port:
            await self.app(scope, receive, send)
            return
        if scope["path"] != "/metrics":
            status, body, kind = 404, b"Not found: this port serves /metrics only.\n", "text/plain"
        elif scope["method"] not in ("GET", "HEAD"):
            status, body, kind = 405, b"Use GET.\n", "text/plain"
        else:
            # Reading every worker's files takes a few milliseconds: off the event loop.
            body = await asyncio.to_thread(metrics.exposition)
            status, kind = 200, metrics.CONTENT_TYPE
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await send(
            HTTPResponseStartEvent(
                type="http.response.start", status=status, headers=headers, trailers=False
            )
        )
        head = scope["method"] == "HEAD"
        await send(
            HTTPResponseBodyEvent(
                type="http.response.body", body=b"" if head else body, more_body=False
            )
        )
