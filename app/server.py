"""Hypercorn configuration from Settings, shared by `movierec serve` and the container."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData

from app import logs, metrics
from app.config import Settings

# Seconds that requests in flight get to finish after SIGTERM; below the 10 s a container engine
# waits before it kills.
GRACEFUL_TIMEOUT = 8.0
# A worker that exits sooner than this after starting may not be able to run at all: it is
# restarted after a pause that doubles each time, and MAX_QUICK_EXITS in a row stop the server.
CRASH_LOOP_SECONDS = 5.0
MAX_QUICK_EXITS = 5
RESTART_PAUSE = 0.5

log = logging.getLogger(__name__)


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


async def serve_until_signalled(
    config: Config, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> None:
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

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    _guard_connections(connection_cap())
    # asyncio accepts up to `backlog` connections at a time, several times over before the
    # first of them is checked: keep that within the reserve of open files.
    config.backlog = min(config.backlog, RESERVED_FILES // 4)
    app = create_app()
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT
    await serve(app, config, shutdown_trigger=stop.wait)


# A client that has taken no byte of an answer for this long is dropped: one that never reads
# would otherwise hold its connection, the buffers and, at the end, the shutdown.
WRITE_TIMEOUT = 5.0
# The same once the worker is stopping, so that it stops well within GRACEFUL_TIMEOUT; long
# enough that a client reading slowly (a phone on a poor network) still gets the whole answer.
WRITE_TIMEOUT_STOPPING = 2.0
# Seconds a request body may take to arrive (Quart's default is 60): slow bodies hold a file each.
BODY_TIMEOUT = 20
# Open files kept back from connections: a burst of accepts (up to Hypercorn's backlog, 100)
# lands before any is checked, and the worker opens files of its own (snapshots, a build).
RESERVED_FILES = 128
# Connections a worker keeps open at most, however high its open-file limit.
MAX_CONNECTIONS = 1000
SIOCOUTQ = 0x5411  # Linux: bytes in a socket's send queue


def connection_cap() -> int:
    """Connections this worker may hold: its open-file limit less the files open and a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    return max(16, min(MAX_CONNECTIONS, soft - in_use - RESERVED_FILES))


def _guard_connections(cap: int) -> None:
    """Serve every connection of this process with _GuardedConnection (see there).

    Hypercorn has neither a write timeout nor a connection limit. Its asyncio worker looks
    TCPServer up in its own module for each new connection, so that name is the narrowest hook.
    """
    from hypercorn.asyncio import run as hypercorn_run

    _GuardedConnection.cap = cap
    setattr(hypercorn_run, "TCPServer", _GuardedConnection)  # noqa: B010 (mypy rejects =)


class _GuardedConnection(TCPServer):
    """Hypercorn's connection with a write timeout, and bounded: past the bound one goes.

    Without a bound, connections beyond the open-file limit make accept() fail and stop the
    listening socket for a second at a time, so nobody is served, health checks included.
    """

    cap: ClassVar[int] = MAX_CONNECTIONS
    open: ClassVar[dict[_GuardedConnection, None]] = {}  # insertion order: oldest first

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._written = 0  # bytes handed to the transport
        self._taken = 0  # of which the client has acknowledged
        self._taken_at = time.monotonic()
        self._task: asyncio.Task[Any] | None = None
        self._dropped = False
        opened = _GuardedConnection.open
        opened[self] = None
        while len(opened) > self.cap:
            # Slow bodies first: a client still sending its request, rather than one waiting
            # for its answer (a health check, a recommendation being computed).
            victim = next((c for c in opened if c.receiving_body()), next(iter(opened)))
            del opened[victim]
            victim.drop()
            log.warning(
                "%d connections open, the most for this worker's open-file limit: closed one",
                len(opened),
            )

    async def run(self) -> None:
        """Serve the connection; it no longer counts once it ends."""
        self._task = asyncio.current_task()
        try:
            await super().run()
        except asyncio.CancelledError:
            if not self._dropped:
                raise
        finally:
            _GuardedConnection.open.pop(self, None)

    def receiving_body(self) -> bool:
        """True while the client is still sending a request's body (h11's state of it)."""
        protocol = getattr(getattr(self, "protocol", None), "protocol", None)
        return getattr(getattr(protocol, "connection", None), "their_state", None) is h11.SEND_BODY

    def drop(self) -> None:
        """Close the connection at once, unsent bytes discarded, and end its task.

        Hypercorn's reading side may be waiting for the answer in progress to finish; after a
        drop it never does, so the task is cancelled rather than left until shutdown.
        """
        self._dropped = True
        sock = self.writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # a reset frees the kernel's buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        if self._task is not None:
            self._task.cancel()

    async def protocol_send(self, event: Event) -> None:
        """Hypercorn's send, but a client that stops reading is dropped (see WRITE_TIMEOUT)."""
        if self._dropped:  # the app may still be finishing its answer: nothing more to do
            return
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                if self._unsent() == 0:  # the client has taken all so far: the clock starts now
                    self._taken_at = time.monotonic()
                self.writer.write(event.data)
                self._written += len(event.data)
                await self._drain()
            except (ConnectionError, RuntimeError, TimeoutError):
                await self.protocol.handle(Closed())
                self.drop()

    async def _drain(self) -> None:
        """Wait until the client has taken enough; TimeoutError once it stalls too long.

        Checked on every write too: the kernel keeps growing its send buffer for a client that
        reads nothing, so each drain may end quickly while the client takes no byte at all.
        """
        while True:
            transport = self.writer.transport
            if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
                # Not paused: drain() returns without yielding, as in Hypercorn's own send, so
                # what the protocol sends next (an HTTP/2 stream's end) keeps its order with the
                # events that may close the connection once it is idle.
                await self.writer.drain()
                drained = True
            else:
                try:
                    await asyncio.wait_for(self.writer.drain(), 1.0)
                    drained = True
                except TimeoutError:
                    drained = False
            stalled = self._stalled_for()
            stopping = self.context.terminated.is_set()
            if stalled >= (WRITE_TIMEOUT_STOPPING if stopping else WRITE_TIMEOUT):
                log.info("Dropped a client that took nothing for %.0f s", stalled)
                raise TimeoutError
            if drained:
                return

    def _stalled_for(self) -> float:
        """Seconds since the client last took a byte; 0 when it has taken all it was sent."""
        unsent = self._unsent()
        taken = self._written - unsent
        now = time.monotonic()
        if unsent == 0 or taken > self._taken:
            self._taken, self._taken_at = taken, now
        return now - self._taken_at

    def _unsent(self) -> int:
        """Bytes the client has not acknowledged: in asyncio's buffer and the kernel's queue."""
        unsent = self.writer.transport.get_write_buffer_size()
        sock = self.writer.get_extra_info("socket")
        # ValueError: the socket is already closed (its descriptor is -1).
        with contextlib.suppress(OSError, AttributeError, ValueError):
            (queued,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))
            unsent += queued
        return unsent


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


def _worker(supervisor: int, replacement: bool = False) -> None:
    """One worker process: its own sockets, Hypercorn in this process until SIGTERM."""
    _die_with_supervisor(supervisor)
    settings = Settings.from_env()
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
    asyncio.run(serve_until_signalled(config, signals=(signal.SIGTERM,)))


def _die_with_supervisor(supervisor: int) -> None:
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


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit: each connection needs one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.debug("Raised the open-file limit from %d to %d", soft, hard)


@dataclass
class _Slot:
    """One worker's place: the process in it, when it started, and how it has been exiting."""

    name: str
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    starts: int = 0
    quick_exits: int = 0
    restart_at: float = 0.0


def run_workers(settings: Settings) -> int:
    """Run `settings.workers` worker processes until SIGTERM or SIGINT; restart any that die.

    Each worker binds its own SO_REUSEPORT socket (see listening_socket). A worker that dies
    is replaced, at once if it had been running a while, else after a growing pause, while
    the others go on serving; only a worker that dies straight after starting
    MAX_QUICK_EXITS times in a row stops the server (exit code 1). On a signal every worker
    gets SIGTERM and finishes its requests in flight; the exit code is 0 once all have
    stopped, 1 if one had to be killed.
    """
    # The ports are checked here first, so a port in use fails once with a clear message.
    for port in (settings.port, settings.metrics_port):
        try:
            if port:
                listening_socket(settings.host, port).close()
        except OSError as exc:
            log.error("Cannot listen on %s:%d: %s", settings.host, port, exc.strerror)
            return 1
    raise_file_limit()
    # Workers are forked from a server process that imported the app once, rather than each
    # importing it afresh (about a second of CPU each, on two cores at once): the server is
    # ready sooner, a replacement worker starts at once, and the imported code is shared.
    # The fork server is a clean process of its own (no threads, no event loop, this
    # environment), started on the first start() below.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app.server", "app.web"])
    stopping = threading.Event()
    slots = [_Slot(f"worker-{i}") for i in range(settings.workers)]

    def on_signal(signum: int, frame: object) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping %d workers", signal.Signals(signum).name, len(slots))
        stopping.set()

    def start(slot: _Slot) -> None:
        slot.process = context.Process(
            target=_worker, args=(os.getpid(), slot.starts > 0), name=slot.name
        )
        slot.process.start()
        slot.started = time.monotonic()
        slot.starts += 1

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for slot in slots:
        start(slot)
    failed = False
    while not stopping.is_set():
        running = [s.process.sentinel for s in slots if s.process is not None]
        multiprocessing.connection.wait(running, timeout=0.2)
        now = time.monotonic()
        for slot in slots:
            if stopping.is_set():
                break
            if slot.process is None:
                if now >= slot.restart_at:
                    start(slot)
                continue
            code = slot.process.exitcode
            if code is None:
                continue
            if slot.process.pid is not None:
                metrics.worker_gone(slot.process.pid)
            slot.process = None
            slot.quick_exits = (
                slot.quick_exits + 1 if now - slot.started < CRASH_LOOP_SECONDS else 0
            )
            if slot.quick_exits >= MAX_QUICK_EXITS:
                log.error(
                    "%s cannot start: it exited %d times in a row within %.0f s of starting "
                    "(last exit code %s); stopping the server",
                    slot.name,
                    slot.quick_exits,
                    CRASH_LOOP_SECONDS,
                    code,
                )
                failed = True
                stopping.set()
                break
            pause = 0.0 if slot.quick_exits == 0 else RESTART_PAUSE * 2 ** (slot.quick_exits - 1)
            slot.restart_at = now + pause
            log.error("%s exited with %s; starting another in %.1f s", slot.name, code, pause)
    workers = [s.process for s in slots if s.process is not None]
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
