"""Saved profiles behind a private link, /me/<token>: save from /rate, rate there, forget.

A saved profile's page is the rating page (app/web/rating_page.py) with its ratings kept in
the database rather than in the address: every change (a star's set=, a remove=, the list
settings, an import) is posted to /me/<token> on its own, applied to the ratings stored, and
answered as /rate answers it. Only the list settings show in the address.

The token is the only key to a profile, so these pages are never cached, never send it on as
a referrer, and the access log shows /me/<token> in its place (app/web/observe.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlencode

from quart import Blueprint, Response, redirect, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from app.engine import (
    MAX_RATINGS,
    DatabaseUnavailable,
    ImportResult,
    InvalidImport,
    InvalidRatings,
    Visit,
    VisitRequest,
)
from app.engine.profiles import ProfileChanged, ProfileNotFound
from app.web.errors import not_ready
from app.web.imports import TOO_LARGE
from app.web.params import InvalidInput, parse_rating_list
from app.web.rating_page import (
    SETTINGS,
    RatingPage,
    import_data,
    import_failed_fragment,
    import_status,
    joined,
    kept_form,
    parse_asked,
    ratings_file,
    show,
)
from app.web.shared import (
    RETRY_SECONDS,
    VARY,
    fragment_headers,
    is_fragment_request,
    query_args,
    render,
    service,
)

bp = Blueprint("profiles", __name__)

PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
"""Headers of every /me answer, errors included: the link is a password."""
CHANGES = ("set", "remove")
"""What a post to the page may change besides the settings (an import aside)."""
CHANGE_ATTEMPTS = 10
"""Times a change is made from the ratings stored when others keep being saved meanwhile."""


@bp.after_app_request
async def private_headers(response: Response) -> Response:
    """Every answer under /me (a 404, 405 or 413 too) is private."""
    if request.path == "/me" or request.path.startswith("/me/"):
        response.headers.update(PRIVATE)
    return response


def _trouble(
    title: str, message: str, status: int, headers: Mapping[str, str] | None = None
) -> ResponseReturnValue:
    """A failure: the alert alone in place of the list for htmx, else a page."""
    if is_fragment_request():
        html = render("partials/_error.html", error=message)
        return html, status, {**fragment_headers(False), **(headers or {})}
    return render("error.html", code=status, title=title, message=message), status, headers or {}


@bp.errorhandler(ProfileNotFound)
async def not_found(exc: ProfileNotFound) -> ResponseReturnValue:
    """No profile behind this link: never saved, forgotten, or expired."""
    return _trouble("Not found", exc.public, 404)


@bp.errorhandler(ProfileChanged)
async def changed_meanwhile(exc: ProfileChanged) -> ResponseReturnValue:
    """409: other changes kept coming in between reading the profile and saving this one."""
    message = "The profile kept changing meanwhile (in another tab?): this change was not saved."
    return _trouble("Not saved", message, 409)


UNAVAILABLE_TITLES = {
    "profiles.save": "Could not save",
    "profiles.change": "Not saved",
    "profiles.forget": "Not forgotten",
}
"""What a page says went undone when the database cannot be reached (else "Not available")."""


@bp.errorhandler(DatabaseUnavailable)
async def unavailable(exc: DatabaseUnavailable) -> ResponseReturnValue:
    """503 in the words of what was asked: nothing was changed; try again shortly."""
    title = UNAVAILABLE_TITLES.get(request.endpoint or "", "Not available")
    return _trouble(title, exc.public, 503, {"Retry-After": str(RETRY_SECONDS)})


@bp.post("/me")
async def save() -> ResponseReturnValue:
    """Move the ratings in the form (r=1:4.5,...) into a new profile; go to its private link."""
    form = await request.form
    try:
        token = await service().profiles.create(parse_rating_list(form.get("r")))
    except (InvalidInput, InvalidRatings) as exc:
        return _trouble("Could not save", str(exc), 400)
    return redirect(url_for("profiles.profile", token=token), 303)


@bp.get("/me/<token>")
async def profile(token: str) -> ResponseReturnValue:
    """The saved profile's rating page; the list settings may come in the query string."""
    if not service().ready:
        return not_ready()
    stored = await service().profiles.get(token)
    return await _applied(token, stored, _only(query_args(), SETTINGS))


@bp.post("/me/<token>")
async def change(token: str) -> ResponseReturnValue:
    """One change to the stored ratings (set=, remove=, or an export posted with `import`),
    with the list settings; answered with the list, as /rate answers."""
    if not service().ready:
        return not_ready()
    stored = await service().profiles.get(token)
    args: dict[str, str] = {}
    imported = None
    try:
        args = (await request.form).to_dict()
        if args.get("import"):
            imported = await service().import_ratings(await import_data(args))
    except RequestEntityTooLarge:
        return await _import_failed(token, stored, InvalidImport(TOO_LARGE, too_large=True))
    except InvalidImport as exc:
        return await _import_failed(token, stored, exc, args)
    return await _applied(token, stored, _only(args, (*SETTINGS, *CHANGES)), imported)


@bp.get("/me/<token>/export")
async def export(token: str) -> ResponseReturnValue:
    """The profile's ratings as a JSON file, in the API's request format."""
    return ratings_file(await service().profiles.get(token))


@bp.post("/me/<token>/forget")
async def forget(token: str) -> ResponseReturnValue:
    """Delete the profile at once, once confirmed; a page that says it is gone."""
    form = await request.form
    if form.get("confirm") != "yes":
        message = "Tick the box to confirm that the profile should be forgotten."
        return _trouble("Not forgotten", message, 400)
    await service().profiles.forget(token)
    return render("profile_gone.html")


async def _import_failed(
    token: str,
    stored: Sequence[tuple[int, float]],
    exc: InvalidImport,
    args: Mapping[str, str] | None = None,
) -> ResponseReturnValue:
    """Say why beside the import form (htmx), or on the whole page; the profile is unchanged."""
    if is_fragment_request():
        return import_failed_fragment(exc)
    settings = _only(args or {}, SETTINGS)
    return await _answer(token, stored, settings, failed=exc.message, status=import_status(exc))


async def _applied(
    token: str,
    stored: Sequence[tuple[int, float]],
    args: Mapping[str, str],
    imported: ImportResult | None = None,
) -> ResponseReturnValue:
    """`_answer`, made again from the ratings stored now whenever another change was saved
    between reading them and writing the result (ProfileChanged after CHANGE_ATTEMPTS)."""
    for _ in range(CHANGE_ATTEMPTS - 1):
        try:
            return await _answer(token, stored, args, imported)
        except ProfileChanged:
            stored = await service().profiles.get(token)
    return await _answer(token, stored, args, imported)


async def _answer(
    token: str,
    stored: Sequence[tuple[int, float]],
    args: Mapping[str, str],
    imported: ImportResult | None = None,
    failed: str | None = None,
    status: int | None = None,
) -> ResponseReturnValue:
    """Apply the change in `args` to the ratings stored, keep the result, and show it."""
    page = RatingPage(url_for("profiles.profile", token=token), token)
    form = kept_form(args, SETTINGS)
    asked, invalid = parse_asked(args)
    if invalid is None and asked.set is not None:
        invalid = await _refused(asked.set, stored)
    # The change applies to what is stored, never to a copy a page sent: two tabs on one
    # profile each add to the other's changes.
    unchanged = VisitRequest(ratings=stored)
    if invalid is None:
        unchanged = replace(asked, ratings=stored, set=None, remove=None)
        asked = replace(asked, ratings=stored)
    replaced = 0
    if imported is not None and invalid is None:
        asked, replaced = joined(asked, imported)
        if len(asked.ratings) > MAX_RATINGS:
            message = (
                f"Nothing was imported: with it the profile would hold {len(asked.ratings):,} "
                f"ratings, and it holds at most {MAX_RATINGS:,}."
            )
            invalid = InvalidInput("import-file", message)
    shown = await show(
        page,
        form,
        asked if invalid is None else unchanged,
        invalid,
        imported=imported,
        replaced=replaced,
        failed_import=failed,
        status=status,
    )
    if invalid is None and asked != unchanged and not _checked(shown.visit):
        # The change left ratings that fail their check (too many, say): nothing is kept,
        # and the page shows the ratings stored, with why.
        field = "import-file" if imported is not None else "set"
        invalid = InvalidInput(field, f"Not saved: {shown.visit.error}")
        shown = await show(page, form, unchanged, invalid)
    now = shown.visit.ratings.pairs()
    if invalid is None and _checked(shown.visit) and now != list(stored):
        await service().profiles.update(token, now, expected=stored)
    if not shown.fragment:
        return shown.html, shown.status, VARY
    if shown.status != 200:
        return shown.html, shown.status, fragment_headers(pushed=False)
    # The same address, the settings in its query: replaced, so that Back leaves the page.
    settings = {name: form[name] for name in SETTINGS if form.get(name)}
    address = page.url + (f"?{urlencode(settings)}" if settings else "")
    return shown.html, 200, {**VARY, "HX-Replace-Url": address}


async def _refused(
    pair: tuple[int, float], stored: Sequence[tuple[int, float]]
) -> InvalidInput | None:
    """Why a star's rating cannot be kept (a new film past the limit, an unknown film, not a
    half star), if it cannot."""
    if len(stored) >= MAX_RATINGS and pair[0] not in dict(stored):
        message = (
            f"A profile holds at most {MAX_RATINGS:,} ratings: remove one to rate another film."
        )
        return InvalidInput("set", message)
    try:
        await service().check_ratings([pair])
    except InvalidRatings as exc:
        return InvalidInput("set", f"That rating was not saved: {exc}")
    return None


def _checked(visit: Visit) -> bool:
    """Whether the visit's ratings passed the check: a failed one has none to keep."""
    return not isinstance(visit.error, InvalidRatings)


def _only(args: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """The fields of `args` named, and no others (never r=: the ratings are stored)."""
    return {name: args[name] for name in names if name in args}
