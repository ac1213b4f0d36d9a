"""The rating page's machinery, shared by /rate and a saved profile's page (/me/<token>).

Both show the same things from one visit of the Service: title search with stars, the list
settings, the recommendations with their reasons, "Your ratings" and the import form. They
differ in where the ratings live: /rate keeps them in its address (or posts them when too
long), a saved profile keeps them in the database and its page sends only the change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from quart import Response
from quart.typing import ResponseReturnValue

from app.engine import (
    FROM_USER_LIMIT,
    ImportResult,
    InvalidImport,
    Visit,
    VisitRequest,
    join_ratings,
)
from app.web.errors import problem
from app.web.imports import posted_export
from app.web.params import InvalidInput, parse_visit
from app.web.shared import LIMITS, fragment_headers, is_fragment_request, render, service

KEPT = ("r", "n", "k", "algorithm", "genre", "year_from", "year_to")
"""What /rate's address keeps; a star control's set= and a remove= are applied, not kept."""
SETTINGS = KEPT[1:]
"""The list settings: all a saved profile's address keeps, its ratings being stored."""
ADDRESS_LIMIT = 4000
"""Most characters of ratings kept in the address. A request's head must fit Hypercorn's 16
KiB, and htmx sends the address twice (the request line and HX-Current-URL); a longer list
is posted (static/js/pages.js reads this from #visitor's data-post-over)."""
RATED_SHOWN = 300
"""Most of a visitor's ratings listed with their stars; all of them count."""
IMPORT_STATUS = "#import-status"
"""Where an import that failed says why (the list and its ratings stay as they were)."""


@dataclass(frozen=True)
class RatingPage:
    """Which rating page answers: where its changes go, and whose ratings it shows."""

    url: str
    """Where the page sends its changes (and where its settings form goes)."""
    token: str | None = None
    """A saved profile's private token; None on /rate, whose ratings are in the address."""

    @property
    def template(self) -> str:
        """The whole page's template (htmx gets partials/_visitor.html alone)."""
        return "rate.html" if self.token is None else "profile.html"


@dataclass(frozen=True)
class Shown:
    """A visit as answered: what the ratings became, the HTML, the status."""

    visit: Visit
    html: str
    status: int
    fragment: bool


def kept_form(args: Mapping[str, str], names: tuple[str, ...] = KEPT) -> dict[str, str]:
    """The fields the page's forms carry on, as they came (shown again beside an error)."""
    return {name: args.get(name, "") for name in names}


def parse_asked(args: Mapping[str, str]) -> tuple[VisitRequest, InvalidInput | None]:
    """The visit asked for, or an empty one and why not."""
    try:
        return parse_visit(args, service().genres()), None
    except InvalidInput as exc:
        return VisitRequest(), exc


def joined(asked: VisitRequest, imported: ImportResult) -> tuple[VisitRequest, int]:
    """The visit with an import joined to its ratings (the import wins); how many it replaced."""
    together = join_ratings(asked.ratings, imported.ratings)
    return replace(asked, ratings=together.pairs), len(together.replaced)


async def show(
    page: RatingPage,
    form: dict[str, str],
    asked: VisitRequest,
    invalid: InvalidInput | None,
    *,
    imported: ImportResult | None = None,
    replaced: int = 0,
    failed_import: str | None = None,
    status: int | None = None,
) -> Shown:
    """Visit `asked` and render it: #visitor's part for htmx, else the whole page."""
    fragment = is_fragment_request()

    def html_of(visit: Visit) -> str:
        template = "partials/_visitor.html" if fragment else page.template
        shown = _context(page, visit, form, invalid)
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

    reply = await service().visit(asked, render=html_of)
    failed = invalid or reply.value.error
    status = status or (problem(failed).status if failed else 200)
    return Shown(reply.value, reply.html or "", status, fragment)


async def import_data(args: Mapping[str, str]) -> bytes:
    """The export posted: the file chosen, else the text pasted; InvalidImport for neither."""
    data = await posted_export(args)
    if data is None:
        raise InvalidImport("Choose your export's file, or paste its text, then Import.")
    return data


def import_status(exc: InvalidImport) -> int:
    """413 for a file over the limit, else 400."""
    return 413 if exc.too_large else 400


def import_failed_fragment(exc: InvalidImport) -> ResponseReturnValue:
    """Say why in place, beside the import form; the visitor's list is left as it was."""
    alert = render("partials/_error.html", error=exc.message, error_field="import-file")
    # The bar that said "Finding films…" says what happened instead.
    alert += render("partials/_import_failed.html")
    headers = {
        **fragment_headers(pushed=False),
        "HX-Retarget": IMPORT_STATUS,
        "HX-Reswap": "innerHTML",
    }
    return alert, import_status(exc), headers


def ratings_file(pairs: Sequence[tuple[int, float]]) -> Response:
    """The ratings as a JSON file to download, in the API's request format."""
    body = {"ratings": [{"movie_id": m, "rating": r} for m, r in pairs]}
    response = Response(json.dumps(body, indent=1) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-ratings.json"'
    return response


def _context(
    page: RatingPage, visit: Visit, form: dict[str, str], invalid: InvalidInput | None
) -> dict[str, Any]:
    """What the rating page's templates show for this visit."""
    failed = invalid or visit.error
    told = problem(failed, user_field="from_user") if failed else None
    if page.token is None and (not failed or len(visit.ratings)):
        # The ratings as checked; ratings that failed the check stay as they came.
        form = {**form, "r": visit.ratings.as_text()}
    return {
        "page_url": page.url,
        "token": page.token,
        "saved": page.token is not None,
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
