"""movierec: MovieLens recommendations served by Quart and htmx."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from quart import Quart, Response

from app.cache import LRUCache
from app.config import Settings
from app.service import Engine

ROOT = Path(__file__).resolve().parent.parent

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


def create_app(settings: Settings | None = None) -> Quart:
    """Build the app; only the real start reads the environment (tests pass `settings`)."""
    from app.web import api, errors, partials, routes, visitor

    settings = settings or Settings.from_env()
    app = Quart(
        __name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static")
    )
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, SEND_FILE_MAX_AGE_DEFAULT=3600)
    if not logging.getLogger().handlers:
        # Hypercorn workers are fresh processes: give the app's own log lines somewhere to go.
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(settings.log_level)
    logging.getLogger("hypercorn").setLevel(settings.log_level)

    engine = Engine(settings)
    app.extensions["engine"] = engine
    # Rendered result fragments: a repeated question costs a lookup, not a render.
    app.extensions["fragments"] = LRUCache(settings.result_cache)
    app.extensions["compute_slots"] = asyncio.Semaphore(settings.compute_threads)
    app.register_blueprint(routes.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(visitor.bp)
    errors.register(app)
    partials.install(app)

    @app.before_serving
    async def start_building() -> None:
        engine.start()

    @app.after_serving
    async def stop_building() -> None:
        await engine.stop()

    @app.after_request
    async def add_security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app
