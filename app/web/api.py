"""The JSON API beside the pages: the same Service calls, serialised."""

from __future__ import annotations

import dataclasses
from typing import Any

from quart import Blueprint, current_app, request

from app.engine import NotReady, Ratings, Recommendations, Status
from app.web import openapi
from app.web.bodies import json_body, parse_ratings_json, plain
from app.web.params import (
    InvalidInput,
    parse_algorithm,
    parse_filters,
    parse_k,
    parse_n,
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
    return {"user_id": uid, "k": k, "neighbours": plain(neighbours)}


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


def recommendations_json(result: Recommendations) -> dict[str, Any]:
    """Serialise a Recommendations answer."""
    body = plain(result)
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
