"""The supervisor: worker processes forked from a fork server, restarted when they die."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass

from app import metrics
from app.backoff import Backoff
from app.config import Settings
from app.serve.config import GRACEFUL_TIMEOUT
from app.serve.heartbeat import Heartbeat
from app.serve.sockets import ports_free, raise_file_limit
from app.serve.worker import run_worker

# A worker that exits sooner than this after starting may not be able to run at all: it is
# restarted after a pause that doubles each time, and MAX_QUICK_EXITS in a row stop the server.
CRASH_LOOP_SECONDS = 5.0
MAX_QUICK_EXITS = 5
RESTART_BACKOFF = Backoff(first=0.5)

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One worker's place: the process in it, when it started, and how it has been exiting."""

    name: str
    heartbeat: Heartbeat
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    starts: int = 0
    quick_exits: int = 0
    restart_at: float = 0.0


def run_workers(settings: Settings) -> int:
    """Run `settings.workers` worker processes until SIGTERM or SIGINT; restart any that die.

    Each worker binds its own SO_REUSEPORT socket (see listening_socket) and gets these
    settings as they are, parsed once here. A worker that dies is replaced, at once if it had
    been running a while, else after a growing pause, while the others go on serving; only a
    worker that dies straight after starting MAX_QUICK_EXITS times in a row stops the server
    (exit code 1). On a signal every worker gets SIGTERM and finishes its requests in flight;
    the exit code is 0 once all have stopped, 1 if one had to be killed. A worker whose
    heartbeat stops for `settings.worker_timeout` seconds (stopped, or its event loop stuck) is
    killed, and so replaced, as one that died.
    """
    if not ports_free(settings.host, (settings.port, settings.metrics_port)):
        return 1
    raise_file_limit()
    # Workers are forked from a server process that imported the app once, rather than each
    # importing it afresh (about a second of CPU each, on two cores at once): the server is
    # ready sooner, a replacement worker starts at once, and the imported code is shared.
    # The fork server is a clean process of its own (no threads, no event loop, this
    # environment), started on the first start() below.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app.serve.worker", "app.web"])
    stopping = threading.Event()
    slots = [_Slot(f"worker-{i}", Heartbeat(context)) for i in range(settings.workers)]

    def on_signal(signum: int, frame: object) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping %d workers", signal.Signals(signum).name, len(slots))
        stopping.set()

    def start(slot: _Slot) -> None:
        slot.heartbeat.beat()  # a new worker has until WORKER_TIMEOUT for its first beat
        slot.process = context.Process(
            target=run_worker,
            args=(os.getpid(), settings, slot.heartbeat, slot.starts > 0),
            name=slot.name,
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
                _kill_if_silent(slot, settings.worker_timeout)
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
            pause = RESTART_BACKOFF.pause(slot.quick_exits)
            slot.restart_at = now + pause
            log.error("%s exited with %s; starting another in %.1f s", slot.name, code, pause)
    return 1 if _stop(slots) or failed else 0


def _kill_if_silent(slot: _Slot, timeout: float) -> None:
    """SIGKILL the slot's worker if its heartbeat has stopped for `timeout` seconds.

    Its exit is then seen as any other and the worker replaced, as gunicorn does on its worker
    timeout: a stopped or stuck worker would otherwise hold its share of new connections.
    """
    silent = slot.heartbeat.silent_for()
    process = slot.process
    if silent < timeout or process is None or process.pid is None:
        return
    log.error("worker %d missed its heartbeat for %.0f s: killing it", process.pid, silent)
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: replaced next round
        os.kill(process.pid, signal.SIGKILL)
    # Until the kill lands, do not count the same silence again.
    slot.heartbeat.beat()


def _stop(slots: list[_Slot]) -> bool:
    """SIGTERM every worker, wait for them to finish, kill the late; whether one was killed."""
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
    return bool(killed)
