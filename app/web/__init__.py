"""The HTTP layer: handlers that parse, make one call to the Service, and render.

It imports `app.engine` (the Service and its public types) and nothing below it.
"""

from __future__ import annotations

from quart import Quart

from app.engine import Service
from app.web import (
    api,
    errors,
    imports,
    nights,
    nights_api,
    observe,
    pages,
    profiles,
    visitor,
)
from app.web.fragments import ResultsFragments
from app.web.middleware import (
    SECURITY_HEADERS,
    Compress,
    RefuseUnsafeRequests,
    SecurityHeaders,
)

# Smaller answers go as they are: below about a packet, compressing saves no round trip.
# The usual list of films (12 KB) is compressed once and kept so by the answer cache.
COMPRESS_MIN_BYTES = 1024
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
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(visitor.bp)
    app.register_blueprint(nights_api.bp)
    app.register_blueprint(nights.bp)
    app.register_blueprint(imports.bp)
    # Imports may post 2 MiB, held in memory: POST /api/imports, /rate and a night's import.
    app.request_class = imports.ImportingRequest
    app.register_blueprint(profiles.bp)
    errors.register(app)

    @app.before_serving
    async def start_building() -> None:
        service.start()

    @app.after_serving
    async def stop_building() -> None:
        await service.stop()

    compressed = Compress(app.asgi_app, COMPRESS_MIN_BYTES)
    app.asgi_app = SecurityHeaders(compressed)  # type: ignore[method-assign]
    app.asgi_app = ResultsFragments(app.asgi_app, service, access_log)  # type: ignore[method-assign]
    observe.install(app, metrics_port, access_log)
    # Outermost, so that the metrics port is covered too.
    app.asgi_app = RefuseUnsafeRequests(app.asgi_app)  # type: ignore[method-assign]
