"""Hypercorn configuration from Settings, shared by `movierec serve` and the container."""

from __future__ import annotations

import logging

from hypercorn.config import Config

from app.config import Settings

APPLICATION_PATH = "app:create_app()"


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn Config that serves create_app() with the settings' host, port and workers."""
    config = Config()
    config.application_path = APPLICATION_PATH
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.workers = settings.workers
    config.graceful_timeout = 10.0
    # Loggers rather than "-": their records go through the root handler that create_app()
    # installs in each worker, once, in the app's format.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = (
        logging.getLogger("hypercorn.access") if settings.log_level == "DEBUG" else None
    )
    config.loglevel = settings.log_level
    config.include_server_header = False
    return config
