"""Hypercorn configuration from Settings, shared by `movierec serve` and the container."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time

from hypercorn.config import Config

from app.config import Settings

# Seconds that requests in flight get to finish after SIGTERM; below the 10 s a container engine
# waits before it kills.
GRACEFUL_TIMEOUT = 8.0
# A worker that exits sooner than this after starting is not restarted: something is wrong.
CRASH_LOOP_SECONDS = 5.0
log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn Config for create_app() with the settings' host and port (one worker each)."""
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
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


async def serve_until_signalled(
    config: Config, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Serve create_app() in this process until SIGTERM or SIGINT, then shut down gracefully.

    Hypercorn stops accepting, lets the requests in flight finish (up to graceful_timeout), closes
    idle connections, and runs the app's after_serving, which cancels a build in progress.
    """
    import sys as _s

    from hypercorn.asyncio import serve

    from app import create_app

    if os.environ.get("SWITCH"):
        _s.setswitchinterval(float(os.environ["SWITCH"]))

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

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    await serve(create_app(), config, shutdown_trigger=stop.wait)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, so each worker can have its own.

    With one socket per worker the kernel spreads new connections evenly between them;
    with one shared socket, whichever worker wakes first takes most of a burst.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker() -> None:
    """One worker process: its own socket, Hypercorn in this process until SIGTERM."""
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = hypercorn_config(settings)
    sock = listening_socket(settings.host, settings.port)
    config.bind = [f"fd://{sock.fileno()}"]
    # Ctrl-C reaches the whole process group; the parent decides when to stop, via SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(serve_until_signalled(config, signals=(signal.SIGTERM,)))


def run_workers(settings: Settings) -> int:
    """Run `settings.workers` worker processes until SIGTERM or SIGINT; restart any that die.

    Each worker binds its own SO_REUSEPORT socket (see listening_socket). On a signal every
    worker gets SIGTERM and finishes its requests in flight; the exit code is 0 once all
    have stopped, 1 if one had to be killed.
    """
    # The port is checked here first, so a port in use fails once with a clear message.
    try:
        listening_socket(settings.host, settings.port).close()
    except OSError as exc:
        log.error("Cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror)
        return 1
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping %d workers", signal.Signals(signum).name, len(workers))
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = [context.Process(target=_worker, name=f"worker-{i}") for i in range(settings.workers)]
    started = {}
    for worker in workers:
        worker.start()
        started[worker.name] = time.monotonic()
    failed = False
    while not stopping.is_set():
        multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0.5)
        for index, worker in enumerate(workers):
            if worker.exitcode is None or stopping.is_set():
                continue
            if time.monotonic() - started[worker.name] < CRASH_LOOP_SECONDS:
                # Dying straight after start means it cannot run at all: do not spin on it.
                log.error("%s exited with %s at start; stopping", worker.name, worker.exitcode)
                failed = True
                stopping.set()
                break
            log.error("%s exited with %s; starting another", worker.name, worker.exitcode)
            workers[index] = context.Process(target=_worker, name=worker.name)
            workers[index].start()
            started[worker.name] = time.monotonic()
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACEFUL_TIMEOUT + 1
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    killed = [w for w in workers if w.is_alive()]
    for worker in killed:
        worker.kill()
        worker.join()
    return 1 if killed or failed else 0
