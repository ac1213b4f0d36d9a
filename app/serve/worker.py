"""One worker: Hypercorn serving create_app(settings) in this process until SIGTERM."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import select
import signal
import sys
import threading

from hypercorn.config import Config

from app import logs, metrics
from app.config import Settings
from app.serve.config import BODY_TIMEOUT, hypercorn_config
from app.serve.connections import RESERVED_FILES, connection_cap, guard_connections
from app.serve.heartbeat import Heartbeat
from app.serve.memory import AnswerOutOfMemory, exit_when_out_of_memory
from app.serve.sockets import listening_socket, raise_file_limit

log = logging.getLogger(__name__)

MALLOC_ARENAS = 2
"""glibc malloc arenas a worker's threads share (glibc's own default is 8 per core)."""
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit, from glibc's malloc.h


async def serve_until_signalled(
    config: Config,
    settings: Settings,
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
    heartbeat: Heartbeat | None = None,
) -> None:
    """Serve create_app(settings) in this process until a signal, then shut down gracefully.

    Hypercorn stops accepting, lets the requests in flight finish (up to graceful_timeout), closes
    idle connections, and runs the app's after_serving, which cancels a build in progress.
    `heartbeat`, when given, beats from this event loop for the supervisor's watchdog.
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

    limit_malloc_arenas()
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    loop.set_exception_handler(exit_when_out_of_memory)
    beating = None if heartbeat is None else asyncio.create_task(heartbeat.keep_beating())
    app = create_app(settings)
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT
    security_headers = app.config.get("SECURITY_HEADERS")
    guard_connections(connection_cap(), security_headers)
    # asyncio accepts up to `backlog` connections at a time, several times over before the
    # first of them is checked: keep that within the reserve of open files.
    config.backlog = min(config.backlog, RESERVED_FILES // 4)
    try:
        await serve(AnswerOutOfMemory(app, security_headers), config, shutdown_trigger=stop.wait)
    finally:
        if beating is not None:
            beating.cancel()


def run_worker(
    supervisor: int, settings: Settings, heartbeat: Heartbeat, replacement: bool = False
) -> None:
    """One worker process: its own sockets, Hypercorn in this process until SIGTERM.

    Its event loop beats `heartbeat` every second for the supervisor's watchdog.
    """
    die_with_supervisor(supervisor)
    logs.configure(settings.log_level, settings.log_format)
    if replacement:  # counted here: the supervisor keeps no metrics of its own
        metrics.WORKER_RESTARTS.inc()
    raise_file_limit()
    config = hypercorn_config(settings)
    sock = listening_socket(settings.host, settings.port)
    config.bind = [f"fd://{sock.fileno()}"]
    if settings.metrics_port:
        metrics_sock = listening_socket(settings.host, settings.metrics_port)
        config.bind.append(f"fd://{metrics_sock.fileno()}")
    # Ctrl-C reaches the whole process group; the parent decides when to stop, via SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(
        serve_until_signalled(config, settings, signals=(signal.SIGTERM,), heartbeat=heartbeat)
    )


def die_with_supervisor(supervisor: int) -> None:
    """SIGTERM this worker as soon as the supervisor dies, however it dies.

    Without it a killed supervisor leaves its workers listening as orphans, and the next
    start adds more listeners on the same port (SO_REUSEPORT). The worker's parent is the
    fork server, which lives as long as any worker does, so the kernel's parent-death signal
    cannot tell; a thread waits on a descriptor of the supervisor's process instead.
    """
    try:
        watched = os.pidfd_open(supervisor)
    except ProcessLookupError:  # the supervisor died before the worker got this far
        sys.exit(0)

    def wait_for_supervisor() -> None:
        select.select([watched], [], [])  # readable once the supervisor has exited
        log.warning("The supervisor is gone: stopping this worker")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_supervisor, name="supervisor-watch", daemon=True).start()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let this process's threads share at most `arenas` glibc malloc arenas; whether it did.

    Answers are computed in asyncio's thread pool, and glibc gives threads arenas of their own:
    memory freed in one stays reserved there. In a 5-minute soak (bench/soak.py) one worker kept
    121 MiB beyond its answer cache and what it held when ready; with 2 arenas none kept over 72.
    Call before the threads start. Not on other C libraries, nor when MALLOC_ARENA_MAX in the
    environment already says how many.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
