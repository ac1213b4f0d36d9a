"""How the process runs: Hypercorn's config, sockets, the connection guard, the worker supervisor.

The domain (engine, evaluation, data, recommender) and app.config never import this package; it
imports the settings, the leaves (logs, metrics, backoff) and, in each worker, create_app().
"""

from __future__ import annotations

import asyncio
import logging

from app import logs, metrics
from app.config import Settings
from app.serve.config import hypercorn_config
from app.serve.hook import HookMismatch, check_hook_point
from app.serve.sockets import raise_file_limit
from app.serve.supervisor import run_workers
from app.serve.worker import serve_until_signalled

__all__ = ["HookMismatch", "check_hook_point", "run"]

log = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    """Serve in the foreground until SIGTERM or SIGINT, then stop gracefully; the exit code."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        # Checked once here, before any worker starts: a Hypercorn that moved the hook point
        # stops the start with one clear line instead of workers that fail one by one.
        check_hook_point()
    except HookMismatch as exc:
        log.error("Cannot start: %s", exc)
        return 1
    if settings.workers > 1:
        # Worker processes with a socket each; this one forwards SIGTERM and restarts the dead.
        if not settings.metrics_port:
            return run_workers(settings)
        # Their metrics go in files that any of them adds up when scraped.
        try:
            with metrics.shared_by_workers(settings.data_dir):
                return run_workers(settings)
        except metrics.NoFolder as exc:
            log.error("Cannot start: %s", exc)
            return 1
    # One worker runs in this process, so in a container it is PID 1 and gets SIGTERM itself.
    raise_file_limit()
    asyncio.run(serve_until_signalled(hypercorn_config(settings), settings))
    return 0
