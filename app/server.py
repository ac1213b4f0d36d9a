"""Hypercorn configuration from Settings, shared by `movierec serve` and the container."""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.config import Config

from app.config import Settings

APPLICATION_PATH = "app:create_app()"
# Seconds that requests in flight get to finish after SIGTERM; below the 10 s a container engine
# waits before it kills.
GRACEFUL_TIMEOUT = 8.0
log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn Config that serves create_app() with the settings' host, port and workers."""
    config = Config()
    config.application_path = APPLICATION_PATH
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.workers = settings.workers
    config.graceful_timeout = GRACEFUL_TIMEOUT
    # Loggers rather than "-": their records go through the root handler that create_app()
    # installs in each worker, once, in the app's format.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = (
        logging.getLogger("hypercorn.access") if settings.log_level == "DEBUG" else None
    )
    config.loglevel = settings.log_level
    config.include_server_header = False
    return config


async def serve_until_signalled(config: Config) -> None:
    """Serve create_app() in this process until SIGTERM or SIGINT, then shut down gracefully.

    Hypercorn stops accepting, lets the requests in flight finish (up to graceful_timeout), closes
    idle connections, and runs the app's after_serving, which cancels a build in progress.
    """
    from hypercorn.asyncio import serve

    from app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.info(
                "%s received: finishing requests in flight (up to %.0f s), then exiting",
                signum.name,
                config.graceful_timeout,
            )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await serve(create_app(), config, shutdown_trigger=stop.wait)
