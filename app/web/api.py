"""The JSON API beside the page: the same engine calls, serialised."""

from __future__ import annotations

import dataclasses
from typing import Any

from quart import Blueprint, request

from app.answers import Recommendations
from app.service import Status
from app.web.offload import off_loop
from app.web.params import parse_algorithm, parse_k, parse_n, parse_user_id
from app.web.routes import engine

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/status")
async def status() -> dict[str, Any]:
    """The engine's state, phase and progress."""
    return status_json(engine().status)


@bp.get("/algorithms")
async def algorithms() -> dict[str, Any]:
    """Every algorithm, whether it serves yet, and the one a request without a choice gets."""
    return {
        "default": engine().default_algorithm(),
        "algorithms": [
            {**dataclasses.asdict(a), "availability": a.availability.value}
            for a in engine().algorithms()
        ],
    }


@bp.get("/users/<user_id>/recommendations")
async def recommendations(user_id: str) -> dict[str, Any]:
    """Top-n recommendations for a user, with the reasons for each film."""
    asked = (
        parse_user_id(user_id),
        parse_n(request.args.get("n")),
        parse_k(request.args.get("k")),
        parse_algorithm(request.args.get("algorithm")),
    )
    result = engine().cached(*asked)
    if result is None:
        result = await off_loop(engine().recommend, *asked)
    return recommendations_json(result)


@bp.get("/users/<user_id>/similar")
async def similar(user_id: str) -> dict[str, Any]:
    """The k users most similar to a user."""
    uid = parse_user_id(user_id)
    k = parse_k(request.args.get("k"))
    neighbours = await off_loop(engine().similar_users, uid, k)
    return {"user_id": uid, "k": k, "neighbours": [dataclasses.asdict(x) for x in neighbours]}


def recommendations_json(result: Recommendations) -> dict[str, Any]:
    """Serialise a Recommendations answer."""
    body = dataclasses.asdict(result)
    body["recommendations"] = body.pop("movies")
    return body


def status_json(current: Status) -> dict[str, Any]:
    """Serialise a Status snapshot."""
    body = dataclasses.asdict(current)
    body["state"] = current.state.value
    body["fraction"] = current.fraction
    body["user_id_range"] = list(current.user_id_range) if current.user_id_range else None
    return body
