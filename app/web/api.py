"""The JSON API beside the pages: the same Service calls, serialised."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from quart import Blueprint, request

from app.engine import Ratings, Recommendations, Status
from app.web.params import (
    InvalidInput,
    parse_algorithm,
    parse_filters,
    parse_k,
    parse_n,
    parse_ratings_json,
    parse_user_id,
)
from app.web.shared import query_args, service

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
    args = query_args()
    try:
        body = json.loads(await request.get_data(as_text=False))
    except ValueError:
        raise InvalidInput("body", "The body is not valid JSON.") from None
    result, ratings = await service().recommend_for_ratings(
        parse_ratings_json(body),
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
