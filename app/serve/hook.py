"""Where the connection guard hooks into Hypercorn, checked at start rather than trusted.

Hypercorn has neither a write timeout nor a connection limit, so app.serve.connections replaces
the class that serves each connection. That relies on what Hypercorn does not promise:
its asyncio worker looks `TCPServer` up in hypercorn.asyncio.run for each new connection;
a TCPServer keeps `writer`, `context`, `send_lock` and an `idle_task` it can stop, and its run()
reads through `_read_data()`; `Updated` events say whether the connection is `idle`; and its
protocol wrapper holds an H11Protocol whose `connection` is an h11.Connection with
`their_state`. The error answers Hypercorn makes itself (h11's 400, 431 and 501) never pass
through the app, so add_to_own_answers() wraps H11Protocol's `_send_h11_event`, through which
they go out, to give them the app's security headers. pyproject.toml pins the versions this
was tested with; check_hook_point() proves the rest before a worker serves.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from importlib import metadata
from types import CodeType
from typing import Any

import h11
import hypercorn.asyncio.run as hypercorn_run
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol

# The versions the guard is tested with, as pinned in pyproject.toml.
TESTED = "Hypercorn 0.18 with h11 0.16"


class HookMismatch(RuntimeError):
    """Hypercorn or h11 is not shaped as the connection guard expects; the message says how."""


def check_hook_point() -> None:
    """Raise HookMismatch unless Hypercorn and h11 are what the connection guard was built on."""
    problem = _problem()
    if problem is not None:
        installed = f"Hypercorn {_version('hypercorn')} with h11 {_version('h11')}"
        raise HookMismatch(
            f"the connection guard cannot hook into {installed}: {problem}. "
            f"It is tested with {TESTED} (pinned in pyproject.toml)."
        )


def install(connection_class: type[TCPServer]) -> None:
    """Serve every new connection of this process with `connection_class`."""
    check_hook_point()
    setattr(hypercorn_run, "TCPServer", connection_class)  # noqa: B010 (mypy rejects =)


# As Hypercorn defines it (None if it does not: check_hook_point says so), wrapped once below.
_SEND_H11_EVENT = getattr(H11Protocol, "_send_h11_event", None)


def add_to_own_answers(headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Add `headers` (lower-case names) to the error answers Hypercorn sends by itself.

    Those are h11's 400 (a malformed request), 431 (headers too large) and 501 (a transfer
    coding other than chunked), and a 500 when the app sends no answer at all; the app's own
    answers carry its headers already, and an error answer keeps any header it has.
    """
    check_hook_point()
    extra = tuple(headers)

    async def send_with_headers(protocol: H11Protocol, event: Any) -> None:
        if isinstance(event, h11.Response) and event.status_code >= 400 and extra:
            present = {name for name, _ in event.headers}
            missing = [(name, value) for name, value in extra if name not in present]
            if missing:
                event = h11.Response(
                    status_code=event.status_code,
                    headers=[*event.headers, *missing],
                    http_version=event.http_version,
                    reason=event.reason,
                )
        await _SEND_H11_EVENT(protocol, event)  # type: ignore[misc]

    setattr(H11Protocol, "_send_h11_event", send_with_headers)  # noqa: B010 (mypy rejects =)


def _problem() -> str | None:
    """What differs from the guard's expectations, or None."""
    current = getattr(hypercorn_run, "TCPServer", None)
    if not (isinstance(current, type) and issubclass(current, TCPServer)):
        return "hypercorn.asyncio.run has no TCPServer class to replace"
    if not _looks_up_per_connection(hypercorn_run.worker_serve.__code__):
        return "hypercorn.asyncio.run.worker_serve no longer looks TCPServer up per connection"
    for method in ("run", "protocol_send", "_read_data"):
        if not inspect.iscoroutinefunction(getattr(TCPServer, method, None)):
            return f"TCPServer.{method} is not a coroutine method"
    if "_read_data" not in TCPServer.run.__code__.co_names:
        return "TCPServer.run no longer reads through _read_data"
    if not inspect.iscoroutinefunction(getattr(H11Protocol, "_send_h11_event", None)):
        return "H11Protocol._send_h11_event is not a coroutine method"
    send_error = getattr(H11Protocol, "_send_error_response", None)
    if "_send_h11_event" not in getattr(getattr(send_error, "__code__", None), "co_names", ()):
        return "H11Protocol._send_error_response no longer sends through _send_h11_event"
    if "idle" not in getattr(Updated, "__dataclass_fields__", {}):
        return "hypercorn.events.Updated no longer says whether the connection is idle"
    try:
        context = WorkerContext(None)
        server = TCPServer(None, None, Config(), context, None, None, None)  # type: ignore[arg-type]
        for name in ("writer", "context", "send_lock"):
            getattr(server, name)
        if not inspect.iscoroutinefunction(server.idle_task.stop):
            return "TCPServer.idle_task.stop is not a coroutine method"
        context.terminated.is_set()
        wrapper = ProtocolWrapper(None, Config(), context, None, None, False, None, None, None)  # type: ignore[arg-type]
        protocol = wrapper.protocol
        if not isinstance(protocol, H11Protocol):
            return "an HTTP/1.1 connection's protocol is no longer an H11Protocol"
        if not isinstance(protocol.connection, h11.Connection):
            return "H11Protocol.connection is no longer an h11.Connection"
        if protocol.connection.their_state is not h11.IDLE:
            return "h11.Connection.their_state no longer reports h11's states"
        h11.SEND_BODY  # noqa: B018 (the state the guard looks for)
    except (TypeError, AttributeError) as exc:
        return f"a connection is built differently ({exc})"
    return None


def _looks_up_per_connection(code: CodeType) -> bool:
    """Whether the name TCPServer is looked up (as a global) in `code` or a function inside it."""
    if "TCPServer" in code.co_names:
        return True
    return any(isinstance(c, CodeType) and _looks_up_per_connection(c) for c in code.co_consts)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(not installed)"
