"""One table from errors to what a client is told: status, the field to mark, a message.

The JSON API sends it as {"error": {"status", "message", "field"}}; pages show it in place
beside the form, marking the field. Anything else becomes an error page or a JSON 500,
never a traceback. A request that comes before the model gets one answer, `not_ready()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quart import Quart, Response, current_app, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from app.engine import (
    MAX_RATINGS,
    AlgorithmUnavailable,
    InvalidRatings,
    NotReady,
    UnknownAlgorithm,
    UnknownUser,
)
from app.web.params import InvalidInput
from app.web.shared import VARY, fragment_headers, is_fragment_request, render, service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """What the client is told about an error: status, message, and the field at fault."""

    status: int
    message: str
    field: str | None = None


def unknown_user_message(exc: UnknownUser) -> str:
    """Name the valid range, and say so when not every id inside it is used."""
    span = exc.highest - exc.lowest + 1
    message = (
        f"User {exc.user_id} is not in the dataset. "
        f"Valid user IDs are {exc.lowest} to {exc.highest}"
    )
    if span != exc.count:
        message += f" ({exc.count:,} users; not every number in between is used)"
    return message + "."


OUT_OF_MEMORY = "The server is short of memory right now; please try again in a moment."


def out_of_memory(exc: MemoryError) -> Problem:
    """503 for a request that needed more memory than the worker could get; logged, plainly."""
    # One line, no traceback: under memory pressure many requests fail alike, and a traceback
    # each (twice over) made the log the largest allocation of all.
    log.error("Out of memory answering %s %s: answered 503", request.method, request.path)
    return Problem(503, OUT_OF_MEMORY)


PROBLEMS: dict[type[Exception], Callable[[Any], Problem]] = {
    InvalidInput: lambda exc: Problem(400, exc.message, exc.field),
    InvalidRatings: lambda exc: Problem(400, str(exc), "ratings"),
    UnknownAlgorithm: lambda exc: Problem(400, str(exc), "algorithm"),
    UnknownUser: lambda exc: Problem(404, unknown_user_message(exc), "user_id"),
    AlgorithmUnavailable: lambda exc: Problem(503, str(exc), "algorithm"),
    MemoryError: out_of_memory,
}
"""Every error a request can meet in the normal course of things, once the model is served."""

RETRY_AFTER_SECONDS = 3
"""Seconds a client told "not ready" waits before asking again; the loading page reloads then."""
# Where the loading card's poll of /status can swap in what the page shows once ready.
_POLLED = frozenset({"web.index"})
_NAVIGATION = {"web.index": "index", "visitor.rate": "rate"}

KNOWN_ERRORS = tuple(PROBLEMS)


def problem(exc: Exception, user_field: str = "user_id") -> Problem:
    """What to tell the client about `exc` (one of KNOWN_ERRORS).

    `user_field` is the form field that named the user, where a page calls it otherwise.
    """
    found = next(describe for kind, describe in PROBLEMS.items() if isinstance(exc, kind))(exc)
    if found.field == "user_id":
        return Problem(found.status, found.message, user_field)
    return found


def json_error(status: int, message: str, field: str | None = None) -> tuple[Response, int]:
    """The API's error body: {"error": {"status": ..., "message": ..., "field": ...}}."""
    body: dict[str, object] = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    return jsonify({"error": body}), status


def not_ready_message() -> str:
    """What to tell a request that came before the model: still loading, or why it failed."""
    current = service().status
    if current.error:
        return f"The recommender is unavailable: {current.error}"
    return "The recommender is still loading; try again in a moment."


def not_ready(status: int = 503) -> tuple[Response | str, int, dict[str, str]]:
    """The one answer while no model is served, for the API, htmx and pages alike.

    503 with Retry-After, and the same message in each form: the API's JSON error, the alert
    alone for htmx, else the page with the loading card (which reloads or polls by itself).
    `status` 200 is for a plain visit to the home page, which asked for nothing yet.
    """
    message = not_ready_message()
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
    if _wants_json():
        body, _ = json_error(503, message)
        return body, status, headers
    if is_fragment_request():
        html = render("partials/_error.html", error=message)
        return html, status, {**headers, **fragment_headers(pushed=False)}
    endpoint = request.endpoint or ""
    html = render(
        "loading.html",
        status=service().status,
        poll=endpoint in _POLLED,
        query_string=request.query_string.decode("ascii", "replace"),
        here=_NAVIGATION.get(endpoint),
        retry_after=RETRY_AFTER_SECONDS,
    )
    return html, status, {**headers, **VARY}


def _is_out_of_memory(exc_info: Any) -> bool:
    return isinstance(exc_info, tuple) and isinstance(exc_info[1], MemoryError)


def _wants_json() -> bool:
    if not has_request_context():  # a WebSocket handshake, which the middleware refuses first
        return True
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def relative(url: str) -> str:
    """`url` without its scheme and host: a path on this server, never one on another."""
    parts = urlsplit(url)
    # One leading slash: "//host/x" would be read as another host's address.
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, ""))


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render("error.html", code=status, title=title, message=message), status


def register(app: Quart) -> None:
    """Install the handlers that turn errors into 4xx/5xx answers."""

    async def known(exc: Exception) -> tuple[Response, int]:
        told = problem(exc)
        return json_error(told.status, told.message, told.field)

    for kind in KNOWN_ERRORS:
        app.register_error_handler(kind, known)

    @app.errorhandler(NotReady)
    async def not_served(exc: NotReady) -> tuple[Response | str, int, dict[str, str]]:
        return not_ready()

    @app.before_request
    async def redirect_relatively() -> None:
        # Werkzeug redirects /api//docs to /api/docs with an absolute URL built from the Host
        # header, which is the client's to choose: send the path alone.
        found = request.routing_exception
        if isinstance(found, RequestRedirect):
            request.routing_exception = RequestRedirect(relative(found.new_url))

    # Out of memory while Quart makes the answer (after the view, so outside the handlers
    # above) comes as an InternalServerError: it is answered below, and Quart's traceback of it
    # is left out of the log, where out_of_memory() says it in one line.
    app.logger.addFilter(lambda record: not _is_out_of_memory(record.exc_info))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response | str, int, dict[str, str]]:
        if isinstance(exc, InternalServerError) and isinstance(exc.original_exception, MemoryError):
            told = out_of_memory(exc.original_exception)
            return (*json_error(told.status, told.message), {})
        status = exc.code or 500
        message = exc.description or exc.name
        headers: dict[str, str] = {}
        if status == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = (
                f"The request body is over {limit // 1024} KiB; send at most {MAX_RATINGS} ratings."
            )
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110: a 405 must say which methods the resource does allow.
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
            message = f"{request.method} is not allowed here; use {headers['Allow']}."
        if _wants_json():
            return (*json_error(status, message), headers)
        return (*_error_page(status, exc.name, message), headers)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response | str, int]:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side; the error has been logged."
        if _wants_json():
            return json_error(500, message)
        return _error_page(500, "Internal Server Error", message)
