"""The JSON API beside the pages: the same Service calls, serialised."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from quart import Blueprint, current_app, request
from werkzeug.exceptions import UnsupportedMediaType

from app.engine import NotReady, Ratings, Recommendations, Status
from app.web import openapi
from app.web.params import (
    InvalidInput,
    parse_algorithm,
    parse_filters,
    parse_k,
    parse_n,
    parse_ratings_json,
    parse_user_id,
)
from app.web.shared import query_args, render, service

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/status")
async def status() -> dict[str, Any]:
    """The engine's state, phase and progress, and how full the answer cache is."""
    return {
        **status_json(service().status),
        "answer_cache": dataclasses.asdict(service().cache_info()),
    }


@bp.get("/algorithms")
async def algorithms() -> dict[str, Any]:
    """Every algorithm, whether it serves yet, and the one a request without a choice gets."""
    return {
        "default": service().default_algorithm(),
        "algorithms": [
            {**dataclasses.asdict(a), "availability": a.availability.value}
            for a in service().algorithms()
        ],
    }


@bp.get("/users/<user_id>/recommendations")
async def recommendations(user_id: str) -> dict[str, Any]:
    """Top-n recommendations for a user, with the reasons for each film."""
    args = query_args()
    reply = await service().recommend(
        parse_user_id(user_id),
        parse_n(args.get("n")),
        parse_k(args.get("k")),
        parse_algorithm(args.get("algorithm")),
    )
    return recommendations_json(reply.value)


@bp.post("/recommendations")
async def recommendations_for_ratings() -> dict[str, Any]:
    """Recommendations for ratings given in the body: {"ratings": [{"movie_id", "rating"}]}."""
    body = json_body(request.mimetype, await request.get_data(as_text=False))
    args = query_args()
    pairs = parse_ratings_json(body)
    if not pairs:
        # As on the rating page, no ratings means nothing to go on: ask for one.
        raise InvalidInput("ratings", "Send at least one rating to get recommendations.")
    result, ratings = await service().recommend_for_ratings(
        pairs,
        parse_n(args.get("n")),
        parse_k(args.get("k")),
        parse_algorithm(args.get("algorithm")),
        parse_filters(args, service().genres()),
    )
    return {**recommendations_json(result), "ratings": _ratings_json(ratings)}


@bp.get("/users/<user_id>/similar")
async def similar(user_id: str) -> dict[str, Any]:
    """The k users most similar to a user."""
    args = query_args()
    uid = parse_user_id(user_id)
    k = parse_k(args.get("k"))
    neighbours = await service().similar_users(uid, k)
    return {"user_id": uid, "k": k, "neighbours": [dataclasses.asdict(x) for x in neighbours]}


@bp.get("/openapi.json")
async def openapi_document() -> dict[str, Any]:
    """This API's OpenAPI 3.1 document, with the limits and names the server has now."""
    return _openapi()


@bp.get("/docs")
async def docs() -> str:
    """The OpenAPI document as a page to read."""
    doc = _openapi()
    return render(
        "api_docs.html",
        doc=doc,
        operations=openapi.operations(doc),
        schemas=openapi.schemas(doc),
    )


def _openapi() -> dict[str, Any]:
    known = service()
    try:
        genres = known.genres() if known.ready else None
    except NotReady:
        genres = None
    limits = openapi.values(known, current_app.config["MAX_CONTENT_LENGTH"])
    return openapi.document(limits, genres)


# No film id or rating has more digits than this; a longer number is not converted at all
# (CPython refuses past 4,300 digits anyway, and a message would echo every one of them).
_MAX_DIGITS = 20


class _TooLong(float):
    """A whole number too long to use: infinite, so a rating is off the scale."""

    digits: int


def _whole_number(text: str) -> int | float:
    digits = len(text.lstrip("-"))
    if digits <= _MAX_DIGITS:
        return int(text)
    number = _TooLong("-inf" if text.startswith("-") else "inf")
    number.digits = digits
    return number


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    movie_id = members.get("movie_id")
    if isinstance(movie_id, _TooLong):
        raise InvalidInput("ratings", f"A movie_id of {movie_id.digits:,} digits names no film.")
    # JSON has one kind of number: 10.0 is the integer 10 (as JSON Schema's "integer" says).
    if isinstance(movie_id, float) and movie_id.is_integer() and abs(movie_id) < 2**63:
        members["movie_id"] = int(movie_id)
    return members


def json_body(mimetype: str, data: bytes | str) -> object:
    """The request body as JSON: 415 unless sent as application/json, 400 with the reason."""
    if mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with Content-Type: application/json.")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InvalidInput("body", "The body is not UTF-8 text, as JSON must be.") from None
    try:
        return json.loads(
            text, parse_int=_whole_number, parse_constant=_not_json, object_pairs_hook=_members
        )
    except InvalidInput:
        raise
    except RecursionError:
        # json.loads recurses once per level: a body of a few KiB of "[" reaches the limit.
        raise InvalidInput(
            "body", "The body is nested too deeply to be a list of ratings."
        ) from None
    except ValueError:
        raise InvalidInput("body", "The body is not valid JSON.") from None


def recommendations_json(result: Recommendations) -> dict[str, Any]:
    """Serialise a Recommendations answer."""
    body = dataclasses.asdict(result)
    body["recommendations"] = body.pop("movies")
    return body


def _ratings_json(ratings: Ratings) -> list[dict[str, Any]]:
    return [{"movie_id": movie_id, "rating": rating} for movie_id, rating in ratings.pairs()]


def status_json(current: Status) -> dict[str, Any]:
    """Serialise a Status snapshot."""
    body = dataclasses.asdict(current)
    body["state"] = current.state.value
    body["fraction"] = current.fraction
    body["user_id_range"] = list(current.user_id_range) if current.user_id_range else None
    return body
