"""Rate films you know and watch the list change: the page, title search and export.

The visitor's ratings live in the address (?r=296:5,1:4.5), so a reload keeps them, a link
shares them and any worker can answer: the server keeps nothing between requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, url_for
from quart.typing import ResponseReturnValue

from app.engine import FROM_USER_LIMIT, InvalidRatings, Ratings, Visit, VisitRequest
from app.web.errors import not_ready, problem
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


@bp.get("/rate")
async def rate() -> ResponseReturnValue:
    """The rating page; htmx requests get the part below the search box, and a new address."""
    args = query_args()
    if not service().ready:
        return not_ready()
    form = {name: args.get(name, "") for name in KEPT}
    asked, invalid = VisitRequest(), None
    try:
        asked = parse_visit(args, service().genres())
    except InvalidInput as exc:
        invalid = exc
    fragment = is_fragment_request()

    def page(visit: Visit) -> str:
        template = "partials/_visitor.html" if fragment else "rate.html"
        shown = _context(visit, form, invalid)
        return render(template, **shown, fragment=fragment, from_user=asked.from_user)

    reply = await service().visit(asked, render=page)
    failed = invalid or reply.value.error
    status = problem(failed).status if failed else 200
    html = reply.html or ""
    if fragment:
        headers = {**fragment_headers(pushed=status == 200)}
        if status == 200:
            headers["HX-Push-Url"] = _address(form, reply.value.ratings)
        return html, status, headers
    return html, status, VARY


@bp.get("/rate/search")
async def search() -> ResponseReturnValue:
    """Films matching the words typed so far (the starters for none), each with its stars."""
    args = query_args()
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


@bp.get("/rate/export")
async def export() -> ResponseReturnValue:
    """The ratings in the address as a JSON file, in the API's request format."""
    args = query_args()
    if not service().ready:
        return not_ready()
    ratings = await service().check_ratings(parse_rating_list(args.get("r")))
    body = {"ratings": [{"movie_id": m, "rating": r} for m, r in ratings.pairs()]}
    response = Response(json.dumps(body, indent=1) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-ratings.json"'
    return response


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
    }


def _address(form: Mapping[str, str], ratings: Ratings) -> str:
    """The canonical address of this state: only non-empty kept fields, ratings first."""
    kept = {name: form[name] for name in KEPT if form.get(name)}
    kept["r"] = ratings.as_text()
    kept = {name: kept[name] for name in KEPT if kept.get(name)}
    return url_for("visitor.rate") + (f"?{urlencode(kept, safe=':,')}" if kept else "")
