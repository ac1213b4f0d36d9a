"""Rate films you know and watch the list change: the page, title search and export.

The visitor's ratings live in the address (?r=296:5,1:4.5), so a reload keeps them, a link
shares them and any worker can answer: the server keeps nothing between requests. A list
too long for an address (an imported history) is posted instead: POST /rate answers as GET
does, and an export file posted with it joins the list (the import wins where both rate a film).
The page's machinery is shared with a saved profile's page (app/web/rating_page.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from quart import Blueprint, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from app.engine import ImportResult, InvalidImport, InvalidRatings, Ratings
from app.web.errors import not_ready
from app.web.imports import TOO_LARGE
from app.web.params import InvalidInput, parse_rating_list
from app.web.rating_page import (
    ADDRESS_LIMIT,
    KEPT,
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
from app.web.shared import VARY, fragment_headers, is_fragment_request, query_args, render, service

bp = Blueprint("visitor", __name__)

SEARCH_LIMIT = 20
MAX_QUERY = 100


@bp.get("/rate")
async def rate() -> ResponseReturnValue:
    """The rating page; htmx requests get the part below the search box, and a new address."""
    return await _rate(query_args())


@bp.post("/rate")
async def rate_posted() -> ResponseReturnValue:
    """The rating page for ratings posted rather than in the address, and for an import:
    a file (or its pasted text) posted with `import` joins the ratings."""
    if not service().ready:
        return not_ready()
    try:
        args = (await request.form).to_dict()
        if not args.get("import"):
            return await _rate(args)
        imported = await service().import_ratings(await import_data(args))
    except RequestEntityTooLarge:
        return await _import_failed(InvalidImport(TOO_LARGE, too_large=True), {})
    except InvalidImport as exc:
        return await _import_failed(exc, args)
    return await _rate(args, imported)


async def _import_failed(exc: InvalidImport, args: dict[str, str]) -> ResponseReturnValue:
    """Say why beside the import form (htmx), or on the whole page; the list stays as it was."""
    if is_fragment_request():
        return import_failed_fragment(exc)
    return await _rate(args, failed_import=exc.message, status=import_status(exc))


async def _rate(
    args: dict[str, str],
    imported: ImportResult | None = None,
    failed_import: str | None = None,
    status: int | None = None,
) -> ResponseReturnValue:
    if not service().ready:
        return not_ready()
    form = kept_form(args)
    asked, invalid = parse_asked(args)
    replaced = 0
    if imported is not None and invalid is None:
        asked, replaced = joined(asked, imported)
    shown = await show(
        RatingPage(url_for("visitor.rate")),
        form,
        asked,
        invalid,
        imported=imported,
        replaced=replaced,
        failed_import=failed_import,
        status=status,
    )
    if shown.fragment:
        headers = {**fragment_headers(pushed=shown.status == 200)}
        if shown.status == 200:
            address = _address(form, shown.visit.ratings)
            headers["HX-Push-Url"] = address if len(address) <= ADDRESS_LIMIT else "false"
        return shown.html, shown.status, headers
    return shown.html, shown.status, VARY


@bp.route("/rate/search", methods=["GET", "POST"])
async def search() -> ResponseReturnValue:
    """Films matching the words typed so far (the starters for none), each with its stars.

    Posted when the ratings sent along (to show the stars given) are too many for an address.
    """
    args = await _args()
    if not service().ready:
        return not_ready()
    query = (args.get("q") or "").strip()[:MAX_QUERY]
    try:
        ratings = await service().check_ratings(parse_rating_list(args.get("r")))
    except (InvalidInput, InvalidRatings):
        ratings = Ratings((), ())
    films = await service().search_movies(query, SEARCH_LIMIT)
    html = render(
        "partials/_film_list.html", films=films, ratings=ratings, query=query, list_id="found"
    )
    return html, 200, {"Vary": "HX-Request"}


@bp.route("/rate/export", methods=["GET", "POST"])
async def export() -> ResponseReturnValue:
    """The ratings in the address (or posted) as a JSON file, in the API's request format."""
    args = await _args()
    if not service().ready:
        return not_ready()
    ratings = await service().check_ratings(parse_rating_list(args.get("r")))
    return ratings_file(ratings.pairs())


async def _args() -> dict[str, str]:
    """The query string's fields, or a posted form's."""
    if request.method == "POST":
        return (await request.form).to_dict()
    return query_args()


def _address(form: Mapping[str, str], ratings: Ratings) -> str:
    """The canonical address of this state: only non-empty kept fields, ratings first."""
    kept = {name: form[name] for name in KEPT if form.get(name)}
    kept["r"] = ratings.as_text()
    kept = {name: kept[name] for name in KEPT if kept.get(name)}
    return url_for("visitor.rate") + (f"?{urlencode(kept, safe=':,')}" if kept else "")
