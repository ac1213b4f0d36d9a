"""Saved profiles behind a private link, /me/<token>: save from /rate, look, forget.

The token is the only key to a profile, so these pages are never cached, never send it on as
a referrer, and the access log shows /me/<token> in its place (app/web/observe.py).
"""

from __future__ import annotations

from quart import Blueprint, Response, redirect, request, url_for
from quart.typing import ResponseReturnValue

from app.engine import DatabaseUnavailable, InvalidRatings
from app.engine.profiles import ProfileNotFound
from app.web.params import InvalidInput, parse_rating_list
from app.web.shared import render, service

bp = Blueprint("profiles", __name__)

PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
"""Headers of every /me page: the link is a password."""


def _page(html: str, status: int = 200) -> Response:
    return Response(html, status, {**PRIVATE, "Content-Type": "text/html; charset=utf-8"})


def _not_found() -> Response:
    return _page(render("error.html", code=404, title="Not found", message=""), 404)


def _failed(message: str, status: int) -> Response:
    return _page(render("error.html", code=status, title="Could not save", message=message), status)


@bp.post("/me")
async def save() -> ResponseReturnValue:
    """Move the ratings in the form (r=1:4.5,...) into a new profile; go to its private link."""
    form = await request.form
    try:
        token = await service().profiles.create(parse_rating_list(form.get("r")))
    except (InvalidInput, InvalidRatings) as exc:
        return _failed(str(exc), 400)
    except DatabaseUnavailable as exc:
        return _failed(exc.public, 503)
    response = redirect(url_for("profiles.profile", token=token), 303)
    response.headers.update(PRIVATE)
    return response


@bp.get("/me/<token>")
async def profile(token: str) -> ResponseReturnValue:
    """The saved profile: its ratings, and the way to forget it."""
    try:
        ratings = await service().profiles.get(token)
    except ProfileNotFound:
        return _not_found()
    except DatabaseUnavailable as exc:
        return _failed(exc.public, 503)
    return _page(render("profile.html", token=token, ratings=ratings))


@bp.post("/me/<token>/forget")
async def forget(token: str) -> ResponseReturnValue:
    """Delete the profile at once, once confirmed; a page that says it is gone."""
    form = await request.form
    if form.get("confirm") != "yes":
        return _failed("Tick the box to confirm that the profile should be forgotten.", 400)
    try:
        await service().profiles.forget(token)
    except ProfileNotFound:
        return _not_found()
    except DatabaseUnavailable as exc:
        return _failed(exc.public, 503)
    return _page(render("profile_gone.html"))
