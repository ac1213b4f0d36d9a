"""Out of memory in a worker: a request that meets it gets 503; the event loop that meets it
ends the worker, which the supervisor replaces.

The app answers a MemoryError raised in its views (app.web's error table). These two cover the
rest: one raised in the app outside its handlers (such as while Quart reads a request's body),
and one raised in the event loop itself, reading a socket or accepting a connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

log = logging.getLogger(__name__)

# The exit code of a worker that ran out of memory outside a request: EX_OSERR (sysexits.h).
EXIT_OUT_OF_MEMORY = 71
MESSAGE = b"The server is short of memory right now; please try again in a moment.\n"


class AnswerOutOfMemory:
    """ASGI wrapper: a MemoryError that escapes the app is answered 503 with a plain message.

    Hypercorn would answer 500 and log a traceback; here it is one line that says "out of
    memory". `headers` (the app's security headers) go on the answer too.
    """

    def __init__(self, app: ASGIFramework, headers: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ]

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Run the app; answer 503 if it runs out of memory before its answer has started."""
        started = False

        async def send_noting_start(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except MemoryError:
            if scope["type"] != "http":
                raise
            path = scope.get("path", "")
            if started:  # too late for a status: Hypercorn ends the answer cut short
                log.error("Out of memory while answering %s %s", scope["method"], path)
                return
            log.error("Out of memory answering %s %s: answered 503", scope["method"], path)
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(MESSAGE)).encode()),
                (b"retry-after", b"5"),
                *self.headers,
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": MESSAGE, "more_body": False})


def exit_when_out_of_memory(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's exception handler: a MemoryError there ends the worker at once.

    Out of memory in the loop itself (reading a socket, accepting a connection) leaves a
    worker that can neither serve nor stop (stopping starts a thread), so it exits and, under
    the supervisor, another takes its place. Anything else goes to asyncio's usual handler.
    """
    if not isinstance(context.get("exception"), MemoryError):
        loop.default_exception_handler(context)
        return
    log.critical(
        "Out of memory outside a request (%s): this worker exits; the supervisor starts another",
        context.get("message", "in the event loop"),
    )
    logging.shutdown()  # flush the line: os._exit skips the usual clean-up
    os._exit(EXIT_OUT_OF_MEMORY)
