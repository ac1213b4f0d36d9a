"""Rate films you know and watch the list change: the page, title search and export.

The visitor's ratings live in the address (?r=296:5,1:4.5), so a reload keeps them, a link
shares them and any worker can answer: the server keeps nothing between requests. A list
too long for an address (an imported history) is posted instead: POST /rate answers as GET
does, and an export file posted with it joins the list (the import wins where both rate a film).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, request, url_for
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from app.engine import (
    FROM_USER_LIMIT,
    ImportResult,
    InvalidImport,
    InvalidRatings,
    Ratings,
    Visit,
    VisitRequest,
    join_ratings,
)
from app.web.errors import not_ready, problem
from app.web.imports import TOO_LARGE
from app.web.params import InvalidInput, parse_rating_list, parse_visit
from app.web.shared import (
    LIMITS,
    VARY,
    fragment_headers,
    is_fragment_request,
    query_args,
    render,
    service,
)

bp = Blueprint("visitor", __name__)

# What the address keeps; a star control's set= and a remove= are applied, not kept.
KEPT = ("r", "n", "k", "algorithm", "genre", "year_from", "year_to")
SEARCH_LIMIT = 20
MAX_QUERY = 100
ADDRESS_LIMIT = 4000
"""Most characters of ratings kept in the address. A request's head must fit Hypercorn's 16
KiB, and htmx sends the address twice (the request line and HX-Current-URL); a longer list
is posted (static/js/pages.js reads this from #visitor's data-post-over)."""
RATED_SHOWN = 300
"""Most of a visitor's ratings listed with their stars; all of them count."""
IMPORT_STATUS = "#import-status"
"""Where an import that failed says why (the list and its ratings stay as they were)."""


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
        imported = await service().import_ratings(await _import_data(args))
    except RequestEntityTooLarge:
        return await _import_failed(InvalidImport(TOO_LARGE, too_large=True), {})
    except InvalidImport as exc:
        return await _import_failed(exc, args)
    return await _rate(args, imported)


async def _import_data(args: dict[str, str]) -> bytes:
    """The export posted: the file chosen, else the text pasted."""
    upload = (await request.files).get("file")
    if upload is not None and upload.filename:
        data = upload.read()
        if data:
            return data if isinstance(data, bytes) else data.encode("utf-8")
    pasted = args.get("paste", "")
    if pasted.strip():
        return pasted.encode("utf-8")
    raise InvalidImport("Choose your export's file, or paste its text, then Import.")


async def _import_failed(exc: InvalidImport, args: dict[str, str]) -> ResponseReturnValue:
    """Say why in place, beside the import form; the visitor's list is left as it was."""
    status = 413 if exc.too_large else 400
    alert = render("partials/_error.html", error=exc.message, error_field="import-file")
    if is_fragment_request():
        # The bar that said "Finding films…" says what happened instead.
        alert += render("partials/_import_failed.html")
        headers = {
            **fragment_headers(pushed=False),
            "HX-Retarget": IMPORT_STATUS,
            "HX-Reswap": "innerHTML",
        }
        return alert, status, headers
    return await _rate(args, failed_import=exc.message, status=status)


async def _rate(
    args: dict[str, str],
    imported: ImportResult | None = None,
    failed_import: str | None = None,
    status: int | None = None,
) -> ResponseReturnValue:
    if not service().ready:
        return not_ready()
    form = {name: args.get(name, "") for name in KEPT}
    asked, invalid = VisitRequest(), None
    try:
        asked = parse_visit(args, service().genres())
    except InvalidInput as exc:
        invalid = exc
    replaced = 0
    if imported is not None and invalid is None:
        joined = join_ratings(asked.ratings, imported.ratings)
        asked, replaced = replace(asked, ratings=joined.pairs), len(joined.replaced)
    fragment = is_fragment_request()

    def page(visit: Visit) -> str:
        template = "partials/_visitor.html" if fragment else "rate.html"
        shown = _context(visit, form, invalid)
        if failed_import:
            shown.update(error=failed_import, error_field="import-file")
        return render(
            template,
            **shown,
            fragment=fragment,
            from_user=asked.from_user,
            imported=imported if invalid is None else None,
            replaced=replaced,
        )

    reply = await service().visit(asked, render=page)
    failed = invalid or reply.value.error
    status = status or (problem(failed).status if failed else 200)
    html = reply.html or ""
    if fragment:
        headers = {**fragment_headers(pushed=status == 200)}
        if status == 200:
            address = _address(form, reply.value.ratings)
            headers["HX-Push-Url"] = address if len(address) <= ADDRESS_LIMIT else "false"
        return html, status, headers
    return html, status, VARY


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
    body = {"ratings": [{"movie_id": m, "rating": r} for m, r in ratings.pairs()]}
    response = Response(json.dumps(body, indent=1) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-ratings.json"'
    return response


async def _args() -> dict[str, str]:
    """The query string's fields, or a posted form's."""
    if request.method == "POST":
        return (await request.form).to_dict()
    return query_args()


def _context(visit: Visit, form: dict[str, str], invalid: InvalidInput | None) -> dict[str, Any]:
    """What the rating page's templates show for this visit."""
    failed = invalid or visit.error
    told = problem(failed, user_field="from_user") if failed else None
    if not failed or len(visit.ratings):
        # The ratings as checked; ratings that failed the check stay as they came.
        form = {**form, "r": visit.ratings.as_text()}
    return {
        "form": form,
        "ratings": visit.ratings,
        "rated": visit.rated,
        "results": visit.results,
        "error": told.message if told else None,
        "error_field": told.field if told else None,
        "limits": LIMITS,
        "from_user_kept": FROM_USER_LIMIT,
        "algorithms": service().algorithms(),
        "default_algorithm": service().default_algorithm(),
        "genres": service().genres(),
        "status": service().status,
        "films": visit.starters,
        "query": "",
        "list_id": "found",
        "address_limit": ADDRESS_LIMIT,
        "in_address": len(form.get("r", "")) <= ADDRESS_LIMIT,
        "rated_shown": RATED_SHOWN,
    }


def _address(form: Mapping[str, str], ratings: Ratings) -> str:
    """The canonical address of this state: only non-empty kept fields, ratings first."""
    kept = {name: form[name] for name in KEPT if form.get(name)}
    kept["r"] = ratings.as_text()
    kept = {name: kept[name] for name in KEPT if kept.get(name)}
    return url_for("visitor.rate") + (f"?{urlencode(kept, safe=':,')}" if kept else "")
