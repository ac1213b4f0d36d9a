"""The movie nights' JSON API: start a night, join it, rate, decide, and the group's list.

Each handler parses, makes one call to `service().nights`, and serialises. A change to a
member's ratings or the night's decisions carries the member's token, given when they joined,
as `Authorization: Bearer <token>`. The errors of nights are answered here (NIGHT_PROBLEMS);
the rest by app/web/errors.py.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, request

from app.engine import (
    MAX_N,
    MAX_NAME,
    DatabaseUnavailable,
    Forbidden,
    InvalidName,
    InvalidRatings,
    Member,
    Night,
    NightFull,
    NightList,
    NightNotFound,
    TooManyNights,
    TooManyRatings,
    UnknownStrategy,
)
from app.web.bodies import json_body, json_movie_id, parse_ratings_json
from app.web.errors import RETRY_AFTER_SECONDS, json_error
from app.web.params import InvalidInput, parse_count
from app.web.shared import query_args, service

bp = Blueprint("nights_api", __name__, url_prefix="/api/nights")

NIGHT_PAGE = "/nights/{id}"
"""Where a night's page is (app/web/nights.py)."""
DEFAULT_NIGHT_N = 10
# Ids and tokens are URL-safe base64 (app/engine/night_rules.py); anything else names nothing.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


class MissingToken(Exception):
    """A change came without `Authorization: Bearer <token>`."""


@dataclasses.dataclass(frozen=True)
class NightProblem:
    """How one error of nights is answered: status, field at fault, extra headers."""

    status: int
    field: str | None = None
    headers: Callable[[Exception], dict[str, str]] = lambda exc: {}


def _retry_later(exc: Exception) -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


NIGHT_PROBLEMS: dict[type[Exception], NightProblem] = {
    NightNotFound: NightProblem(404),
    NightFull: NightProblem(409, "name"),
    InvalidName: NightProblem(400, "name"),
    Forbidden: NightProblem(403),
    TooManyRatings: NightProblem(400, "ratings"),
    UnknownStrategy: NightProblem(400, "strategy"),
    TooManyNights: NightProblem(
        429, headers=lambda exc: {"Retry-After": str(getattr(exc, "retry_after", 3600))}
    ),
    MissingToken: NightProblem(401, headers=lambda exc: {"WWW-Authenticate": "Bearer"}),
    DatabaseUnavailable: NightProblem(503, headers=_retry_later),
}
"""Every error of a night's request, answered as the API's JSON error."""


def _public(exc: Exception) -> str:
    # DatabaseUnavailable's str() names the server's database; clients get `public`.
    return str(getattr(exc, "public", None) or exc)


async def night_problem(exc: Exception) -> tuple[Response, int, dict[str, str]]:
    """The JSON error for one of NIGHT_PROBLEMS."""
    told = next(problem for kind, problem in NIGHT_PROBLEMS.items() if isinstance(exc, kind))
    body, status = json_error(told.status, _public(exc), told.field)
    return body, status, told.headers(exc)


for _kind in NIGHT_PROBLEMS:
    bp.register_error_handler(_kind, night_problem)


def night_id_of(raw: str) -> str:
    """A night id from the path; NightNotFound for anything that cannot be one."""
    if not _ID.fullmatch(raw):
        raise NightNotFound()
    return raw


def member_id_of(raw: str) -> str:
    """A member id from the path; Forbidden for anything that cannot be one."""
    if not _ID.fullmatch(raw):
        raise Forbidden()
    return raw


def bearer_token() -> str:
    """The token of `Authorization: Bearer <token>`; MissingToken without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("Send the member's token as Authorization: Bearer <token>.")
    return token.strip()


async def body_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = json_body(request.mimetype, await request.get_data(as_text=False))
    if not isinstance(body, dict):
        raise InvalidInput("body", "The body must be a JSON object.")
    return body


def _member_id(body: dict[str, Any]) -> str:
    member_id = body.get("member_id")
    if not isinstance(member_id, str):
        raise InvalidInput("member_id", "Send member_id: the id the member got when joining.")
    return member_id_of(member_id)


def _movie_id(body: dict[str, Any], required: bool = True) -> int | None:
    movie_id = json_movie_id(body.get("movie_id"))
    if movie_id is None and not required:
        return None
    if not isinstance(movie_id, int) or isinstance(movie_id, bool) or movie_id < 1:
        raise InvalidInput("movie_id", "movie_id must be the id of a film, a whole number.")
    return movie_id


def _film_or_field(exc: InvalidRatings) -> InvalidInput:
    return InvalidInput("movie_id", str(exc))


def member_json(member: Member) -> dict[str, Any]:
    """A member: id, name, ratings."""
    return {
        "member_id": member.id,
        "name": member.name,
        "ratings": [{"movie_id": m, "rating": r} for m, r in member.ratings],
    }


def night_json(night: Night) -> dict[str, Any]:
    """A night: its members in joining order, the films set aside, the pick, its version."""
    return {
        "id": night.id,
        "url": NIGHT_PAGE.format(id=night.id),
        "version": night.version,
        "created_at": night.created_at.isoformat(),
        "expires_at": night.expires_at.isoformat(),
        "members": [member_json(member) for member in night.members],
        "set_aside": list(night.set_aside),
        "picked": night.picked,
    }


def night_list_json(listed: NightList) -> dict[str, Any]:
    """The group's list: the strategy, the members, and each film with every member's match."""
    night, chosen = listed.night, listed.recommendations
    members = night.members
    return {
        "strategy": chosen.strategy,
        "strategy_label": chosen.strategy_label,
        "algorithm": chosen.algorithm,
        "version": night.version,
        "members": [member_json(member) for member in members],
        "set_aside": list(night.set_aside),
        "picked": night.picked,
        "recommendations": [
            {
                "movie_id": film.movie_id,
                "title": film.title,
                "year": film.year,
                "genres": list(film.genres),
                "score": film.score,
                "members": [
                    {"member_id": member.id, "name": member.name, "match": match}
                    for member, match in zip(members, film.matches, strict=True)
                ],
                "reasons": [dataclasses.asdict(reason) for reason in film.reasons],
                "imdb_url": film.imdb_url,
                "tmdb_url": film.tmdb_url,
            }
            for film in chosen.films
        ],
    }


@bp.post("")
async def create() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Start a night: 201 with its id, page and expiry."""
    night = await service().nights.create(request.remote_addr or "unknown")
    url = NIGHT_PAGE.format(id=night.id)
    body = {"id": night.id, "url": url, "expires_at": night.expires_at.isoformat()}
    return body, 201, {"Location": f"{bp.url_prefix}/{night.id}"}


@bp.get("/<night_id>")
async def night(night_id: str) -> dict[str, Any]:
    """The night as it is now."""
    return night_json(await service().nights.get(night_id_of(night_id)))


@bp.post("/<night_id>/members")
async def join(night_id: str) -> tuple[dict[str, Any], int]:
    """Join with {"name"}: 201 with the member's id and token."""
    found = night_id_of(night_id)
    name = (await body_object()).get("name")
    if not isinstance(name, str):
        raise InvalidName('Send the name to show as a string: {"name": "Ana"}.')
    if len(name) > MAX_NAME:
        # As the API's document says: the name as sent, spaces around it included.
        raise InvalidName(f"A name can have at most {MAX_NAME} characters.")
    member, token = await service().nights.join(found, name)
    return {"member_id": member.id, "name": member.name, "token": token}, 201


@bp.put("/<night_id>/members/<member_id>/ratings")
async def set_ratings(night_id: str, member_id: str) -> dict[str, Any]:
    """Replace the member's ratings with {"ratings": [{"movie_id", "rating"}]}."""
    found, member, token = night_id_of(night_id), member_id_of(member_id), bearer_token()
    # Who may is answered before what is sent: a stranger learns nothing from the body's fate.
    await service().nights.check_member(found, member, token)
    pairs = parse_ratings_json(await body_object())
    changed = await service().nights.set_ratings(found, member, token, pairs)
    return member_json(changed)


@bp.delete("/<night_id>/members/<member_id>")
async def leave(night_id: str, member_id: str) -> tuple[str, int]:
    """The member leaves, with their ratings: 204."""
    found, member, token = night_id_of(night_id), member_id_of(member_id), bearer_token()
    await service().nights.leave(found, member, token)
    return "", 204


@bp.post("/<night_id>/set-aside")
async def set_aside(night_id: str) -> dict[str, Any]:
    """Set a film aside for everyone, {"member_id", "movie_id"}: the night as it is now."""
    found, token = night_id_of(night_id), bearer_token()
    body = await body_object()
    member = _member_id(body)
    movie_id = _movie_id(body)
    assert movie_id is not None
    try:
        changed = await service().nights.set_aside(found, member, token, movie_id)
    except InvalidRatings as exc:
        raise _film_or_field(exc) from None
    return night_json(changed)


@bp.put("/<night_id>/pick")
async def pick(night_id: str) -> dict[str, Any]:
    """Mark the pick, {"member_id", "movie_id"} (null clears it): the night as it is now."""
    found, token = night_id_of(night_id), bearer_token()
    body = await body_object()
    member = _member_id(body)
    if "movie_id" not in body:
        raise InvalidInput("movie_id", "Send movie_id: the film picked, or null for none.")
    try:
        changed = await service().nights.pick(found, member, token, _movie_id(body, False))
    except InvalidRatings as exc:
        raise _film_or_field(exc) from None
    return night_json(changed)


@bp.get("/<night_id>/recommendations")
async def recommendations(night_id: str) -> dict[str, Any]:
    """The group's list: `n` films (default 10) by `strategy` (default: the best measured)."""
    args = query_args()
    found = night_id_of(night_id)
    n = parse_count(args.get("n"), "n", "Number of recommendations", DEFAULT_NIGHT_N, MAX_N)
    strategy = (args.get("strategy") or "").strip().lower() or None
    return night_list_json(await service().nights.recommendations(found, n, strategy))
