"""The connection guard: a cap on open connections and a write timeout, which Hypercorn lacks."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol

from app.serve import hook

log = logging.getLogger(__name__)

# A client that has taken no byte of an answer for this long is dropped: one that never reads
# would otherwise hold its connection, the buffers and, at the end, the shutdown.
WRITE_TIMEOUT = 5.0
# The same once the worker is stopping, so that it stops well within GRACEFUL_TIMEOUT; long
# enough that a client reading slowly (a phone on a poor network) still gets the whole answer.
WRITE_TIMEOUT_STOPPING = 2.0
# Open files kept back from connections: a burst of accepts (up to Hypercorn's backlog, 100)
# lands before any is checked, and the worker opens files of its own (snapshots, a build).
RESERVED_FILES = 128
# Connections a worker keeps open at most, however high its open-file limit.
MAX_CONNECTIONS = 1000
SIOCOUTQ = 0x5411  # Linux: bytes in a socket's send queue
CHECK_AFTER = 1.0
"""Seconds the write clock runs before a send asks the kernel how much the client took.
Asking on every send (two ioctl calls) was a tenth of a busy worker's event loop; a client
cannot stall for WRITE_TIMEOUT_STOPPING within a second, so nothing is dropped later than
CHECK_AFTER past its time."""


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


def guard_connections(cap: int, answer_headers: Mapping[str, str] | None = None) -> None:
    """Serve every connection of this process with GuardedConnection, at most `cap` at once.

    `answer_headers` (the app's security headers) go on the error answers Hypercorn sends by
    itself, which the app never sees. Raises hook.HookMismatch if Hypercorn is not shaped as
    the guard expects (see app.serve.hook).
    """
    GuardedConnection.cap = cap
    hook.install(GuardedConnection)
    hook.add_to_own_answers(
        [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (answer_headers or {}).items()
        ]
    )


class GuardedConnection(TCPServer):
    """Hypercorn's connection with a write timeout, and bounded: past the bound one goes.

    Without a bound, connections beyond the open-file limit make accept() fail and stop the
    listening socket for a second at a time, so nobody is served, health checks included.
    """

    cap: ClassVar[int] = MAX_CONNECTIONS
    open: ClassVar[dict[GuardedConnection, None]] = {}  # insertion order: oldest first

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._written = 0  # bytes handed to the transport
        self._taken = 0  # of which the client has acknowledged
        self._taken_at = time.monotonic()
        self._task: asyncio.Task[Any] | None = None
        self._dropped = False
        self._read_ended = False
        opened = GuardedConnection.open
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
            GuardedConnection.open.pop(self, None)

    async def _read_data(self) -> None:
        """Hypercorn's reading loop; once it ends, the connection closes as soon as it is idle.

        Hypercorn's run() waits for every task of the connection when reading ends, the idle
        task included: that one waits out keep_alive_timeout (5 s), so a client that simply
        closed after its answer (no `Connection: close`) left the socket in CLOSE-WAIT that
        long, holding a file and a place under the cap. Nothing more can come from the client:
        the idle task goes, and the connection no longer counts against the cap.
        """
        await super()._read_data()
        self._read_ended = True
        GuardedConnection.open.pop(self, None)
        await self.idle_task.stop()

    def receiving_body(self) -> bool:
        """True while the client is still sending a request's body (h11's state of it)."""
        try:
            wrapper = self.protocol
        except AttributeError:  # Hypercorn sets it once run() has begun: nothing received yet
            return False
        # The path is checked at start (hook.check_hook_point); HTTP/2 keeps no such state.
        protocol = wrapper.protocol
        if not isinstance(protocol, H11Protocol) or not isinstance(
            protocol.connection, h11.Connection
        ):
            return False
        return protocol.connection.their_state is h11.SEND_BODY

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
        if isinstance(event, Updated) and event.idle and self._read_ended:
            # An answer ended after the client stopped sending: no next request can come, so
            # no idle wait either; run() closes the connection once its tasks are done.
            return
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                # The client has taken all so far: the clock starts now.
                if self._clock_is_old() and self._unsent() == 0:
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
            stalled = self._stalled_for() if self._clock_is_old() else 0.0
            stopping = self.context.terminated.is_set()
            if stalled >= (WRITE_TIMEOUT_STOPPING if stopping else WRITE_TIMEOUT):
                log.info("Dropped a client that took nothing for %.0f s", stalled)
                raise TimeoutError
            if drained:
                return

    def _clock_is_old(self) -> bool:
        """Whether the write clock was last started or moved on CHECK_AFTER or more ago."""
        return time.monotonic() - self._taken_at >= CHECK_AFTER

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
