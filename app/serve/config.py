"""Hypercorn's Config from Settings, and the time limits the workers keep."""

from __future__ import annotations

import logging

from hypercorn.config import Config

from app.config import Settings

# Seconds that requests in flight get to finish after SIGTERM; below the 10 s a container engine
# waits before it kills.
GRACEFUL_TIMEOUT = 8.0
# Seconds a request body may take to arrive (Quart's default is 60): slow bodies hold a file each.
BODY_TIMEOUT = 20


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn Config for create_app() with the settings' host and port (one worker each)."""
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    if settings.metrics_port:
        config.bind.append(f"{host}:{settings.metrics_port}")
    config.graceful_timeout = GRACEFUL_TIMEOUT
    # A logger rather than "-": its records go through the root handler that create_app()
    # installs in each worker, once, in the app's format. Access lines come from the app
    # (ACCESS_LOG), which knows the route and the request id.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    config.loglevel = settings.log_level
    config.include_server_header = False
    return config
