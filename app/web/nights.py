"""A movie night's pages: start one, join it, rate films, watch the group's list, decide.

The night itself lives in the database behind `service().nights`; a member's right to change
their own ratings is a token kept in an HttpOnly cookie scoped to the night's path. Every
member's page polls `/nights/<id>/live?v=<version>`, which answers 204 while the night is
unchanged (one cheap read) and the group's list when it has changed, on any replica.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

from quart import Blueprint, redirect, request, url_for
from quart.typing import ResponseReturnValue

from app.engine import (
    MAX_MEMBERS,
    MAX_NAME,
    DatabaseUnavailable,
    Forbidden,
    GroupFilm,
    InvalidRatings,
    Member,
    Movie,
    Night,
    NightError,
    NightNotFound,
    Nights,
    NotReady,
    Ratings,
    TooManyNights,
    UnknownStrategy,
    VisitRequest,
)
from app.web.errors import not_ready, not_ready_message, problem
from app.web.params import (
    InvalidInput,
    parse_movie_id,
    parse_rating_list,
    parse_rating_pair,
    parse_user_id,
)
from app.web.qr import qr_svg
from app.web.shared import VARY, is_fragment_request, render, service

bp = Blueprint("nights", __name__)

COOKIE = "night_member"
"""The member's "<member id>:<token>"; ids and tokens are URL-safe base64, without a colon."""
SEARCH_LIMIT = 20
MAX_QUERY = 100
RETRY_SECONDS = 5
"""How soon a night page that could not reach the database tries again by itself."""
QR_LABEL = "QR code of this night's link"
STATUS = {"NightFull": 409, "Forbidden": 403, "TooManyNights": 429}
"""Statuses of the NightErrors that are not a plain 400 (NightNotFound has its own page)."""


def nights() -> Nights:
    """The Service's movie nights."""
    return service().nights


@bp.post("/nights")
async def start() -> ResponseReturnValue:
    """Start a night (one click) and go to its page."""
    night = await nights().create(request.remote_addr or "unknown")
    return redirect(url_for("nights.night", night_id=night.id), 303)


@bp.get("/nights/<night_id>")
async def night(night_id: str) -> ResponseReturnValue:
    """The night's page: share link and QR code, members, the group's list, your ratings."""
    return await _page(night_id)


@bp.get("/nights/<night_id>/live")
async def live(night_id: str) -> ResponseReturnValue:
    """The group's list, or 204 while the night's version is still the one the page has."""
    if request.args.get("v") == str(await nights().version(night_id)):
        return "", 204, VARY
    return await _live(night_id), 200, VARY


@bp.post("/nights/<night_id>/join")
async def join(night_id: str) -> ResponseReturnValue:
    """Join with a display name; the member's token goes into a cookie for this night."""
    form = await request.form
    try:
        member, token = await nights().join(night_id, form.get("name", ""))
    except NightError as exc:
        if isinstance(exc, NightNotFound):
            raise
        return await _page(night_id, _status(exc), join_error=str(exc), name=form.get("name"))
    response = redirect(url_for("nights.night", night_id=night_id), 303)
    response.set_cookie(
        COOKIE,
        f"{member.id}:{token}",
        max_age=int(service().settings.night_ttl),
        path=url_for("nights.night", night_id=night_id),
        secure=request.scheme == "https",
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.post("/nights/<night_id>/ratings")
async def rate(night_id: str) -> ResponseReturnValue:
    """Rate one film (set=movie_id:rating) or remove a rating (remove=movie_id)."""
    form = await request.form
    member_id, token = _credentials()
    if form.get("remove"):
        movie_id = parse_movie_id(form["remove"], "remove")
        await nights().rate(night_id, member_id, token, movie_id, None)
    else:
        movie_id, rating = parse_rating_pair(form.get("set"), "set")
        await nights().rate(night_id, member_id, token, movie_id, rating)
    return await _changed(night_id, "partials/night_mine.html")


@bp.post("/nights/<night_id>/bring")
async def bring(night_id: str) -> ResponseReturnValue:
    """Replace your ratings with a MovieLens user's or those of a /rate link."""
    form = await request.form
    member_id, token = _credentials()
    try:
        pairs = await _brought(form.get("from_user", ""), form.get("link", ""))
    except (InvalidInput, InvalidRatings) as exc:
        return await _page(night_id, 400, bring_error=problem(exc).message)
    await nights().set_ratings(night_id, member_id, token, pairs)
    return redirect(url_for("nights.night", night_id=night_id) + "#mine-title", 303)


@bp.post("/nights/<night_id>/leave")
async def leave(night_id: str) -> ResponseReturnValue:
    """Leave the night: your ratings go, and so does the cookie."""
    member_id, token = _credentials()
    await nights().leave(night_id, member_id, token)
    response = redirect(url_for("nights.night", night_id=night_id), 303)
    response.delete_cookie(COOKIE, path=url_for("nights.night", night_id=night_id))
    return response


@bp.post("/nights/<night_id>/decide")
async def decide(night_id: str) -> ResponseReturnValue:
    """Set a film aside for everyone (aside=movie_id), pick one (pick=...), or undo the pick."""
    form = await request.form
    member_id, token = _credentials()
    if form.get("aside"):
        await nights().set_aside(night_id, member_id, token, parse_movie_id(form["aside"], "aside"))
    elif form.get("pick"):
        await nights().pick(night_id, member_id, token, parse_movie_id(form["pick"], "pick"))
    else:
        await nights().pick(night_id, member_id, token, None)
    return await _changed(night_id, "partials/night_live.html")


@bp.get("/nights/<night_id>/search")
async def search(night_id: str) -> ResponseReturnValue:
    """Films matching the words typed (the starters for none), with your stars on them."""
    query = (request.args.get("q") or "").strip()[:MAX_QUERY]
    found = await nights().get(night_id)
    mine = _me(found)
    ratings = await service().check_ratings(mine.ratings if mine else ())
    films = await service().search_movies(query, SEARCH_LIMIT)
    html = render(
        "partials/_film_list.html", films=films, ratings=ratings, query=query, list_id="found"
    )
    return html, 200, VARY


@bp.errorhandler(NightNotFound)
async def not_found(exc: NightNotFound) -> ResponseReturnValue:
    """An unknown or expired night: a page (or, polled, a notice) offering to start one."""
    if is_fragment_request():
        return render("partials/night_gone.html", message=str(exc)), 404, VARY
    return render("night_missing.html", message=str(exc)), 404, VARY


@bp.errorhandler(DatabaseUnavailable)
async def unavailable(exc: DatabaseUnavailable) -> ResponseReturnValue:
    """The database cannot be reached: say so, and try again by itself."""
    headers = {**VARY, "Retry-After": str(RETRY_SECONDS)}
    context = {"message": exc.public, "retry": RETRY_SECONDS, "night_id": _night_id()}
    if is_fragment_request():
        return render("partials/night_unavailable.html", **context), 503, headers
    return render("night_unavailable.html", **context), 503, headers


@bp.errorhandler(NotReady)
async def not_served(exc: NotReady) -> ResponseReturnValue:
    """Before the model (or between two): a polled list keeps polling; pages as elsewhere."""
    if not is_fragment_request():
        return not_ready()
    context = {"message": not_ready_message(), "retry": RETRY_SECONDS, "night_id": _night_id()}
    html = render("partials/night_unavailable.html", **context, title="The group's list is loading")
    return html, 503, {**VARY, "Retry-After": str(RETRY_SECONDS)}


@bp.errorhandler(NightError)
@bp.errorhandler(InvalidInput)
@bp.errorhandler(InvalidRatings)
@bp.errorhandler(UnknownStrategy)
async def refused(exc: Exception) -> ResponseReturnValue:
    """Anything else a member cannot do: the message in place (htmx) or on a page."""
    message = exc.message if isinstance(exc, InvalidInput) else str(exc)
    status = _status(exc)
    headers = {**VARY, "HX-Reswap": "none"} if is_fragment_request() else dict(VARY)
    if isinstance(exc, TooManyNights):
        headers["Retry-After"] = str(exc.retry_after)
    if is_fragment_request():
        # Not swapped over what the member has: night.js shows it in the page's alert.
        return render("partials/_error.html", error=message), status, headers
    return render("error.html", code=status, title="Movie night", message=message), status, headers


async def _page(night_id: str, status: int = 200, **extra: Any) -> ResponseReturnValue:
    found = await nights().get(night_id)
    mine = _me(found)
    context = await _live_context(found)
    if mine:
        visit = (await service().visit(VisitRequest(ratings=mine.ratings, n=1))).value
        context |= {"rated": visit.rated, "ratings": visit.ratings, "films": visit.starters}
    share = url_for("nights.night", night_id=found.id, _external=True)
    context |= {
        "share_url": share,
        # 24 ms of pure Python the first time: off the event loop, then kept.
        "qr_svg": await asyncio.to_thread(qr_svg, share, QR_LABEL),
        "query": "",
        "list_id": "found",
        "max_name": MAX_NAME,
        "max_members": MAX_MEMBERS,
        **extra,
    }
    return render("night.html", **context), status, VARY


async def _live(night_id: str) -> str:
    return render("partials/night_live.html", **await _live_context(await nights().get(night_id)))


async def _live_context(found: Night) -> dict[str, Any]:
    """What the polled part shows: the pick, the members, the group's list."""
    chosen = await nights().recommendations(found.id)
    listed = chosen.recommendations
    night = chosen.night
    picked: GroupFilm | Movie | None = next(
        (f for f in listed.films if f.movie_id == night.picked), None
    )
    if night.picked is not None and picked is None:
        # The pick left the list (a member rated it since): look its title up.
        visit = (await service().visit(VisitRequest(ratings=[(night.picked, 5.0)], n=1))).value
        picked = visit.rated[0][0] if visit.rated else None
    raters: dict[int, list[str]] = {}
    for member in night.members:
        for movie_id, _ in member.ratings:
            raters.setdefault(movie_id, []).append(member.name)
    return {
        "night": night,
        "group": listed,
        "picked": picked,
        "me": _me(night),
        "raters": raters,
    }


async def _changed(night_id: str, template: str) -> ResponseReturnValue:
    """After a member's change: the part it changed (htmx), or back to the page."""
    if not is_fragment_request():
        return redirect(url_for("nights.night", night_id=night_id), 303)
    if template.endswith("night_live.html"):
        html = await _live(night_id)
    else:
        mine = _me(await nights().get(night_id))
        pairs = mine.ratings if mine else ()
        visit = (await service().visit(VisitRequest(ratings=pairs, n=1))).value
        html = render(template, rated=visit.rated, night_id=night_id)
    # The member's own page need not wait for its next poll to show the new list.
    return html, 200, {**VARY, "HX-Trigger": "night-changed"}


async def _brought(from_user: str, link: str) -> list[tuple[int, float]]:
    """The ratings brought in: a MovieLens user's (their highest rated), or a /rate link's."""
    if from_user.strip():
        asked = VisitRequest(from_user=parse_user_id(from_user, "from_user"), n=1)
        visit = (await service().visit(asked)).value
        if visit.error:
            raise InvalidInput("from_user", problem(visit.error).message)
        return visit.ratings.pairs()
    text = link.strip()
    if "r=" in text or "?" in text:
        text = (parse_qs(urlsplit(text).query).get("r") or [""])[0]
    pairs = parse_rating_list(text)
    if not pairs:
        raise InvalidInput("link", "Paste a /rate link with ratings, or a MovieLens user id.")
    checked: Ratings = await service().check_ratings(pairs)
    return checked.pairs()


def _credentials() -> tuple[str, str]:
    """The member id and token from this night's cookie; Forbidden without one."""
    member_id, _, token = request.cookies.get(COOKIE, "").partition(":")
    if not member_id or not token:
        raise Forbidden()
    return member_id, token


def _me(found: Night) -> Member | None:
    """This browser's member of the night, if it joined (its token is checked on each change)."""
    member_id = request.cookies.get(COOKIE, "").partition(":")[0]
    return next((m for m in found.members if m.id == member_id), None)


def _status(exc: Exception) -> int:
    return STATUS.get(type(exc).__name__, 400)


def _night_id() -> str | None:
    return (request.view_args or {}).get("night_id")
