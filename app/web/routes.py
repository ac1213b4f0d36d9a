"""The page and its fragments: parse -> run the engine in a thread -> render page or partial."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from quart import Blueprint, current_app, redirect, render_template, request
from quart.typing import ResponseReturnValue

from app.cache import LRUCache
from app.recommender import UnknownUser
from app.service import MAX_K, MAX_N, AlgorithmUnavailable, Engine, NotReady, UnknownAlgorithm
from app.web import partials
from app.web.errors import in_place
from app.web.htmx import is_fragment_request
from app.web.offload import off_loop
from app.web.params import DEFAULT_K, DEFAULT_N, InvalidInput, parse_query

bp = Blueprint("web", __name__)

FORM_FIELDS = ("user_id", "n", "k", "algorithm")


def engine() -> Engine:
    """The engine this app serves."""
    engine: Engine = current_app.extensions["engine"]
    return engine


def fragments() -> LRUCache[str]:
    """Rendered result fragments, keyed by what they were rendered from."""
    cache: LRUCache[str] = current_app.extensions["fragments"]
    return cache


def _fragment_key(args: Mapping[str, str]) -> Hashable | None:
    """What a result fragment depends on: the model, the algorithm that answers, the query.

    None when the request is not a plain, valid query (errors are rendered every time).
    """
    try:
        query = parse_query(args)
        if query is None:
            return None
        algorithm, note = engine().resolve(query.algorithm)
    except (InvalidInput, UnknownAlgorithm, AlgorithmUnavailable, NotReady):
        return None
    return (engine().generation, algorithm, note, query.user_id, query.n, query.k)


@bp.get("/")
async def index() -> tuple[str, int, dict[str, str]]:
    """The page; with ?user_id= it carries the results, and htmx gets only the results."""
    if not engine().ready:
        if is_fragment_request():
            html = await render_template("partials/_error.html", error=_not_ready_message())
            return html, 503, _fragment_headers()
        status = 503 if "user_id" in request.args else 200
        return await _page(**_context({})), status, _vary()
    if is_fragment_request():
        key = _fragment_key(request.args)
        cached = fragments().get(key) if key else None
        if cached is not None:
            return cached, 200, _fragment_headers(pushed=True)
        context, status = await _answer(request.args)
        fragment = await off_loop(partials.render, "partials/_results.html", context)
        if key and status == 200:
            fragments().put(key, fragment)
        return fragment, status, _fragment_headers(pushed=status == 200)
    context, status = await _answer(request.args)
    return await _page(**context), status, _vary()


@bp.get("/status")
async def status() -> tuple[str, int, dict[str, str]]:
    """The loading card while building; once ready, the form (and results for the page's query)."""
    if not engine().ready:
        html = await render_template("partials/_status.html", **_context({}))
        return html, 200, _vary()
    # A poll always succeeds; a bad query shows its message inside the form it swaps in.
    context, _ = await _answer(request.args)
    html = await render_template("partials/_app.html", **context)
    return html, 200, _vary()


@bp.post("/retry")
async def retry() -> ResponseReturnValue:
    """Start a new build after a failure; htmx gets the loading card, a plain form a redirect."""
    engine().start()
    if is_fragment_request():
        html = await render_template("partials/_status.html", **_context({}))
        return html, 200, _vary()
    return redirect("/", 303)


@bp.get("/about")
async def about() -> tuple[str, int, dict[str, str]]:
    """How the algorithms compare offline: the latest evaluation table, its split and date."""
    found = await off_loop(engine().evaluation)
    report, local = found if found else (None, False)
    html = await render_template(
        "about.html",
        report=report,
        local=local,
        algorithms=engine().algorithms(),
        default_algorithm=engine().default_algorithm(),
        status=engine().status,
    )
    return html, 200, {}


@bp.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@bp.get("/readyz")
async def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: 200 once the model is served, else 503 with the phase or the error."""
    current = engine().status
    body: dict[str, Any] = {"status": current.state.value, "phase": current.phase}
    if current.error:
        body["error"] = current.error
    return body, 200 if engine().ready else 503


@bp.get("/favicon.ico")
async def favicon() -> ResponseReturnValue:
    """Browsers ask for /favicon.ico whatever the page links; send them the SVG."""
    return redirect("/static/img/favicon.svg", 301)


async def _answer(args: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """Validate the query and compute its results; errors become a message and a status."""
    context = _context(args)
    try:
        query = parse_query(args)
        if query is None:
            return context, 200
        # A repeated question is answered on the loop; a new one is computed in a thread.
        asked = (query.user_id, query.n, query.k, query.algorithm)
        context["results"] = engine().cached(*asked) or await off_loop(engine().recommend, *asked)
        return context, 200
    except (InvalidInput, UnknownUser, AlgorithmUnavailable) as exc:
        status, context["error"], context["error_field"] = in_place(exc)
        return context, status


def _context(args: Mapping[str, str]) -> dict[str, Any]:
    form = {name: args.get(name, "") for name in FORM_FIELDS}
    # Show the defaults as values, so the pushed URL reads ?user_id=42&n=5&k=5.
    form["n"] = form["n"] or str(DEFAULT_N)
    form["k"] = form["k"] or str(DEFAULT_K)
    return {
        "status": engine().status,
        "algorithms": engine().algorithms(),
        "default_algorithm": engine().default_algorithm(),
        "form": form,
        "results": None,
        "error": None,
        "error_field": None,
        "query_string": request.query_string.decode("ascii", "replace"),
        "limits": {"n": MAX_N, "k": MAX_K, "default_n": DEFAULT_N, "default_k": DEFAULT_K},
    }


async def _page(**context: Any) -> str:
    return await render_template("index.html", **context)


async def not_ready_page() -> tuple[str, int, dict[str, str]]:
    """503 while the model loads: the message alone for htmx, else a page that reloads itself."""
    if is_fragment_request():
        html = await render_template("partials/_error.html", error=_not_ready_message())
        return html, 503, _fragment_headers()
    html = await render_template("loading.html", message=_not_ready_message())
    return html, 503, _vary()


def _not_ready_message() -> str:
    current = engine().status
    if current.error:
        return f"The recommender is unavailable: {current.error}"
    return "The recommender is still loading; try again in a moment."


def _vary() -> dict[str, str]:
    return {"Vary": "HX-Request, HX-History-Restore-Request"}


def _fragment_headers(pushed: bool = False) -> dict[str, str]:
    headers = _vary()
    if not pushed:
        # Keep a mistyped or failed query out of the address bar and the history.
        headers["HX-Push-Url"] = "false"
    return headers
