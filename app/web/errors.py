"""Domain errors and HTTP errors -> status codes with a readable message, never a traceback."""

from __future__ import annotations

import logging

from quart import Quart, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.profiles import InvalidRatings
from app.recommender import UnknownUser
from app.service import AlgorithmUnavailable, NotReady
from app.web.params import InvalidInput

log = logging.getLogger(__name__)


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


PageError = InvalidInput | InvalidRatings | UnknownUser | AlgorithmUnavailable
"""What a page shows in place, beside the form, instead of an error page."""


def in_place(exc: PageError, user_field: str = "user_id") -> tuple[int, str, str]:
    """Status, message and the field to mark for an error shown beside the form."""
    if isinstance(exc, InvalidInput):
        return 400, exc.message, exc.field
    if isinstance(exc, InvalidRatings):
        return 400, str(exc), "r"
    if isinstance(exc, UnknownUser):
        return 404, unknown_user_message(exc), user_field
    return 503, str(exc), "algorithm"


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def json_error(status: int, message: str, **extra: object) -> tuple[Response, int]:
    """The API's error body: {"error": {"status": ..., "message": ...}}."""
    return jsonify({"error": {"status": status, "message": message, **extra}}), status


async def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    html = await render_template("error.html", code=status, title=title, message=message)
    return html, status


def register(app: Quart) -> None:
    """Install the handlers that turn errors into 4xx/5xx answers."""

    @app.errorhandler(InvalidInput)
    async def invalid_input(exc: InvalidInput) -> tuple[Response, int]:
        return json_error(400, exc.message, field=exc.field)

    @app.errorhandler(InvalidRatings)
    async def invalid_ratings(exc: InvalidRatings) -> tuple[Response, int]:
        return json_error(400, str(exc), field="ratings")

    @app.errorhandler(UnknownUser)
    async def unknown_user(exc: UnknownUser) -> tuple[Response, int]:
        return json_error(404, unknown_user_message(exc), field="user_id")

    @app.errorhandler(NotReady)
    async def not_ready(exc: NotReady) -> tuple[Response, int]:
        return json_error(503, str(exc))

    @app.errorhandler(AlgorithmUnavailable)
    async def algorithm_unavailable(exc: AlgorithmUnavailable) -> tuple[Response, int]:
        return json_error(503, str(exc), field="algorithm")

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response | str, int]:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = f"The request body is over {limit // 1024} KiB; send at most 500 ratings."
        if _wants_json():
            return json_error(status, message)
        return await _error_page(status, exc.name, message)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response | str, int]:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side; the error has been logged."
        if _wants_json():
            return json_error(500, message)
        return await _error_page(500, "Internal Server Error", message)
