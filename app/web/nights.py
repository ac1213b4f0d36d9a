"""A movie night's pages: start one, join it, rate films, watch the group's list, decide.

The night itself lives in the database behind `service().nights`; a member's right to change
their own ratings is a token kept in an HttpOnly cookie scoped to the night's path. Every
member's page polls `/nights/<id>/live?v=<version>`, which answers 204 while the night is
unchanged (one cheap read) and the group's list when it has changed, on any replica.
A member may bring ratings (app/web/night_sources.py): an export joins theirs; a MovieLens
user's, a /rate link's or a saved profile's replace them. A saved profile starts or joins a
night in one step, its token in the form's body only (never in an address or the log).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, redirect, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.response import Response as AnyResponse

from app.engine import (
    DatabaseUnavailable,
    Forbidden,
    ImportResult,
    InvalidImport,
    InvalidRatings,
    Member,
    NightError,
    NightNotFound,
    NotReady,
    TooManyNights,
    UnknownStrategy,
)
from app.web import night_views as views
from app.web.errors import not_ready, not_ready_message, problem
from app.web.imports import TOO_LARGE, posted_export
from app.web.night_sources import brought, night_named, profile_ratings
from app.web.night_views import COOKIE, member_of, nights
from app.web.params import InvalidInput, parse_movie_id, parse_rating_pair
from app.web.shared import RETRY_SECONDS, VARY, is_fragment_request, render, service

bp = Blueprint("nights", __name__)

SEARCH_LIMIT = 20
MAX_QUERY = 100
STATUS = {"NightFull": 409, "Forbidden": 403, "TooManyNights": 429}
"""Statuses of the NightErrors that are not a plain 400 (NightNotFound has its own page)."""


@bp.post("/nights")
async def start() -> ResponseReturnValue:
    """Start a night (one click) and go to its page; with a `name`, join it at once, with
    the ratings of the saved profile whose token is `profile`, if one is given."""
    form = await request.form
    client = request.remote_addr or "unknown"
    if "name" not in form and "profile" not in form:
        night = await nights().create(client)
        return redirect(url_for("nights.night", night_id=night.id), 303)
    ratings = await profile_ratings(form.get("profile", ""))
    night, member, token = await nights().create_joined(client, form.get("name", ""), ratings)
    return _joined(night.id, member, token)


@bp.post("/nights/join")
async def join_by_link() -> ResponseReturnValue:
    """Join the night a pasted link (or id) names, as `name`, with a saved profile's ratings."""
    form = await request.form
    night_id = night_named(form.get("night", ""))
    ratings = await profile_ratings(form.get("profile", ""))
    member, token = await nights().join(night_id, form.get("name", ""), ratings)
    return _joined(night_id, member, token)


@bp.get("/nights/<night_id>")
async def night(night_id: str) -> ResponseReturnValue:
    """The night's page: share link and QR code, members, the group's list, your ratings."""
    return await views.page(night_id)


@bp.get("/nights/<night_id>/live")
async def live(night_id: str) -> ResponseReturnValue:
    """The group's list, or 204 while the night's version is still the one the page has."""
    if request.args.get("v") == str(await nights().version(night_id)):
        return "", 204, VARY
    return await views.live(night_id), 200, VARY


@bp.post("/nights/<night_id>/join")
async def join(night_id: str) -> ResponseReturnValue:
    """Join with a display name, and an export if one is posted (its summary is shown); the
    member's token goes into a cookie for this night."""
    name = ""
    try:
        form = await request.form
        name = form.get("name", "")
        export = await posted_export(form)
        imported = await service().import_ratings(export) if export else None
    except RequestEntityTooLarge:
        return await views.page(night_id, 413, join_error=TOO_LARGE, join_import_failed=True)
    except InvalidImport as exc:
        status = 413 if exc.too_large else 400
        return await views.page(
            night_id, status, join_error=exc.message, join_import_failed=True, name=name
        )
    try:
        member, token = await nights().join(night_id, name, imported.ratings if imported else ())
    except NightError as exc:
        if isinstance(exc, NightNotFound):
            raise
        return await views.page(night_id, _status(exc), join_error=str(exc), name=name)
    if imported is None:
        return _joined(night_id, member, token)
    left_out = len(imported.ratings) - len(member.ratings)
    html, _, _ = await views.page(night_id, as_member=member, **_summary(imported, 0, left_out))
    response = Response(html, 200, VARY)
    _remember(response, night_id, member, token)
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
    return await views.changed(night_id, "partials/night_mine.html")


@bp.post("/nights/<night_id>/bring")
async def bring(night_id: str) -> ResponseReturnValue:
    """Replace your ratings with a MovieLens user's, a /rate link's or a saved profile's."""
    form = await request.form
    member_id, token = _credentials()
    await nights().check_member(night_id, member_id, token)
    try:
        pairs = await brought(form.get("from_user", ""), form.get("link", ""))
    except (InvalidInput, InvalidRatings) as exc:
        return await views.page(night_id, 400, bring_error=problem(exc).message)
    await nights().bring(night_id, member_id, token, pairs)
    return redirect(url_for("nights.night", night_id=night_id) + "#mine-title", 303)


@bp.post("/nights/<night_id>/import")
async def import_history(night_id: str) -> ResponseReturnValue:
    """Add an export's ratings (a file, or its pasted text) to yours: the import wins where
    both rate a film. The page says what it found; a failed import changes nothing."""
    member_id, token = _credentials()
    # Refused as such before reading what may be 2 MiB.
    await nights().check_member(night_id, member_id, token)
    try:
        export = await posted_export(await request.form)
        if export is None:
            raise InvalidImport("Choose your export's file, or paste its text, then Import.")
        imported = await service().import_ratings(export)
    except RequestEntityTooLarge:
        return await views.page(night_id, 413, import_error=TOO_LARGE)
    except InvalidImport as exc:
        return await views.page(night_id, 413 if exc.too_large else 400, import_error=exc.message)
    added = await nights().bring(night_id, member_id, token, imported.ratings, add=True)
    return await views.page(night_id, **_summary(imported, added.replaced, added.left_out))


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
    return await views.changed(night_id, "partials/night_live.html")


@bp.get("/nights/<night_id>/search")
async def search(night_id: str) -> ResponseReturnValue:
    """Films matching the words typed (the starters for none), with your stars on them."""
    query = (request.args.get("q") or "").strip()[:MAX_QUERY]
    found = await nights().get(night_id)
    mine = member_of(found)
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
    message = _message(exc)
    status = _status(exc)
    headers = {**VARY, "HX-Reswap": "none"} if is_fragment_request() else dict(VARY)
    if isinstance(exc, TooManyNights):
        headers["Retry-After"] = str(exc.retry_after)
    if is_fragment_request():
        # Not swapped over what the member has: night.js shows it in the page's alert.
        return render("partials/_error.html", error=message), status, headers
    return render("error.html", code=status, title="Movie night", message=message), status, headers


def _summary(imported: ImportResult, replaced: int, left_out: int) -> dict[str, Any]:
    """What the page shows of an import: the partial's context."""
    return {"imported": imported, "replaced": replaced, "left_out": left_out}


def _joined(night_id: str, member: Member, token: str) -> ResponseReturnValue:
    """To the night's page, as the member who has just joined."""
    response = redirect(url_for("nights.night", night_id=night_id), 303)
    _remember(response, night_id, member, token)
    return response


def _remember(response: AnyResponse, night_id: str, member: Member, token: str) -> None:
    """Keep the member's id and token in a cookie for this night's pages alone."""
    response.set_cookie(
        COOKIE,
        f"{member.id}:{token}",
        max_age=int(service().settings.night_ttl),
        path=url_for("nights.night", night_id=night_id),
        secure=request.scheme == "https",
        httponly=True,
        samesite="Lax",
    )


def _credentials() -> tuple[str, str]:
    """The member id and token from this night's cookie; Forbidden without one."""
    member_id, _, token = request.cookies.get(COOKIE, "").partition(":")
    if not member_id or not token:
        raise Forbidden()
    return member_id, token


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, InvalidInput | InvalidImport) else str(exc)


def _status(exc: Exception) -> int:
    return STATUS.get(type(exc).__name__, 400)


def _night_id() -> str | None:
    return (request.view_args or {}).get("night_id")
