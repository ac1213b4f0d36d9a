"""The page for a MovieLens user and its fragments, the loading card, About and health."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from quart import Blueprint, Response, redirect, request, url_for
from quart.typing import ResponseReturnValue

from app.engine import DEFAULT_K, DEFAULT_N, Recommendations
from app.web.errors import KNOWN_ERRORS, not_ready, problem
from app.web.evaluation_charts import about_charts, group_summary
from app.web.middleware import preferred_coding
from app.web.params import parse_query
from app.web.shared import (
    LIMITS,
    VARY,
    fragment_headers,
    is_fragment_request,
    query_args,
    render,
    service,
)

bp = Blueprint("web", __name__)

FORM_FIELDS = ("user_id", "n", "k", "algorithm")
ENCODED_VARY = {"Vary": f"{VARY['Vary']}, Accept-Encoding"}
"""A results fragment's body depends on Accept-Encoding too (it is kept compressed)."""


def results_fragment(templates: jinja2.Environment) -> Callable[[Recommendations], str]:
    """The Service's `present`: the results a search swaps in, rendered by `templates`.

    It needs no request or app context (the template calls no url_for), so it runs in the
    Service's worker thread and before Quart alike (app/web/fragments.py).
    """

    def present(results: Recommendations) -> str:
        template = templates.get_template("partials/_results.html")
        return template.render(results=results, error=None, fragment=True)

    return present


@bp.get("/")
async def index() -> ResponseReturnValue:
    """The page; with ?user_id= it carries the results, and htmx gets only the results."""
    args = query_args()
    recommender = service()
    if not recommender.ready:
        # A visit without a query asked for nothing that could be refused.
        return not_ready(503 if "user_id" in args else 200)
    fragment = is_fragment_request()
    # A fragment is kept compressed with its answer: the middleware passes it as it is.
    coding = preferred_coding(request.headers.get("Accept-Encoding")) if fragment else None
    try:
        query = parse_query(args)
        reply = (
            await recommender.recommend(
                query.user_id,
                query.n,
                query.k,
                query.algorithm,
                presented=fragment,
                coding=coding,
            )
            if query
            else None
        )
    except KNOWN_ERRORS as exc:
        told = problem(exc)
        if fragment:
            html = render(
                "partials/_results.html",
                error=told.message,
                error_field=told.field,
                results=None,
                fragment=True,
            )
            return html, told.status, fragment_headers(pushed=False)
        page = _context(args, error=told.message, error_field=told.field)
        return render("index.html", **page), told.status, VARY
    if fragment:
        if reply is None:
            return "", 200, fragment_headers(pushed=True)
        if reply.body is None or coding is None:
            return reply.html or "", 200, ENCODED_VARY
        return Response(
            reply.body,
            200,
            {**ENCODED_VARY, "Content-Encoding": coding},
            content_type="text/html; charset=utf-8",
        )
    page = _context(args, results=reply.value if reply else None)
    return render("index.html", **page), 200, VARY


@bp.get("/status")
async def status() -> tuple[str, int, dict[str, str]]:
    """The loading card while building; once ready, the form (and results for the page's query)."""
    args = query_args()
    if not service().ready:
        return render("partials/_status.html", **_context({})), 200, VARY
    # A poll always succeeds; a bad query shows its message inside the form it swaps in.
    try:
        query = parse_query(args)
        results = (
            (await service().recommend(query.user_id, query.n, query.k, query.algorithm)).value
            if query
            else None
        )
        page = _context(args, results=results)
    except KNOWN_ERRORS as exc:
        told = problem(exc)
        page = _context(args, error=told.message, error_field=told.field)
    return render("partials/_app.html", **page), 200, VARY


@bp.post("/retry")
async def retry() -> ResponseReturnValue:
    """Start a new build after a failure; htmx gets the loading card, a plain form a redirect."""
    service().retry()
    if is_fragment_request():
        return render("partials/_status.html", **_context({})), 200, VARY
    return redirect(url_for("web.index"), 303)


@bp.get("/about")
async def about() -> tuple[str, int, dict[str, str]]:
    """How the algorithms compare offline: charts first, then the tables, the split and date."""
    found = await service().evaluation()
    report, local = found if found else (None, False)
    labels = {a.name: a.label for a in service().algorithms()}
    html = render(
        "about.html",
        report=report,
        local=local,
        algorithms=service().algorithms(),
        labels=labels,
        charts=about_charts(report, labels, service().default_algorithm()),
        default_algorithm=service().default_algorithm(),
        group_summary=group_summary(report),
        status=service().status,
        here="about",
    )
    return html, 200, {}


@bp.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@bp.get("/readyz")
async def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: 200 once the model is served, else 503 with the phase or the error."""
    current = service().status
    body: dict[str, Any] = {"status": current.state.value, "phase": current.phase}
    if current.error:
        body["error"] = current.error
    return body, 200 if service().ready else 503


@bp.get("/favicon.ico")
async def favicon() -> ResponseReturnValue:
    """Browsers ask for /favicon.ico whatever the page links; send them the SVG."""
    return redirect(url_for("static", filename="img/favicon.svg"), 301)


def _context(args: Mapping[str, str], **shown: Any) -> dict[str, Any]:
    """What the page's templates show: status, algorithms, the form as typed, and `shown`."""
    form = {name: args.get(name, "") for name in FORM_FIELDS}
    # Show the defaults as values, so the pushed URL reads ?user_id=42&n=5&k=5.
    form["n"] = form["n"] or str(DEFAULT_N)
    form["k"] = form["k"] or str(DEFAULT_K)
    return {
        "status": service().status,
        "algorithms": service().algorithms(),
        "default_algorithm": service().default_algorithm(),
        "form": form,
        "results": None,
        "error": None,
        "error_field": None,
        "query_string": request.query_string.decode("ascii", "replace"),
        "limits": LIMITS,
        **shown,
    }
