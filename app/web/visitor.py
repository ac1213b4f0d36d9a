"""Rate films you know and watch the list change: the page, title search and export.

The visitor's ratings live in the address (?r=296:5,1:4.5), so a reload keeps them, a link
shares them and any worker can answer: the server keeps nothing between requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, render_template, request

from app.profiles import InvalidRatings, Ratings
from app.recommender import UnknownUser
from app.service import MAX_K, MAX_N, AlgorithmUnavailable
from app.web import partials
from app.web.errors import in_place
from app.web.htmx import is_fragment_request
from app.web.offload import off_loop
from app.web.params import (
    DEFAULT_K,
    DEFAULT_N,
    InvalidInput,
    parse_algorithm,
    parse_filters,
    parse_k,
    parse_n,
    parse_rating_list,
    parse_rating_pair,
    parse_user_id,
)
from app.web.routes import engine, not_ready_page

bp = Blueprint("visitor", __name__)

# What the address keeps; a star control's set= and a remove= are applied, not kept.
KEPT = ("r", "n", "k", "algorithm", "genre", "year_from", "year_to")
SEARCH_LIMIT = 20
STARTERS = 24
MAX_QUERY = 100


@bp.get("/rate")
async def rate() -> tuple[str, int, dict[str, str]]:
    """The rating page; htmx requests get the part below the search box, and a new address."""
    if not engine().ready:
        return await not_ready_page()
    context, status = await _visitor(request.args)
    headers = {"Vary": "HX-Request, HX-History-Restore-Request"}
    if is_fragment_request():
        html = await off_loop(partials.render, "partials/_visitor.html", context)
        headers["HX-Push-Url"] = context["address"] if status == 200 else "false"
        return html, status, headers
    return await render_template("rate.html", **context), status, headers


@bp.get("/rate/search")
async def search() -> tuple[str, int, dict[str, str]]:
    """Films matching the words typed so far, each with its star control."""
    if not engine().ready:
        return await not_ready_page()
    query = (request.args.get("q") or "").strip()[:MAX_QUERY]
    try:
        ratings = await off_loop(engine().check_ratings, parse_rating_list(request.args.get("r")))
    except (InvalidInput, InvalidRatings):
        ratings = Ratings((), ())
    if query:
        films = await off_loop(engine().search_movies, query, SEARCH_LIMIT)
    else:
        films = await off_loop(engine().popular_movies, STARTERS)
    html = await off_loop(
        partials.render,
        "partials/_film_list.html",
        {"films": films, "ratings": ratings, "query": query, "list_id": "found"},
    )
    return html, 200, {"Vary": "HX-Request"}


@bp.get("/rate/export")
async def export() -> Response:
    """The ratings in the address as a JSON file, in the API's request format."""
    if not engine().ready:
        return Response("The recommender is still loading.", 503)
    ratings = await off_loop(engine().check_ratings, parse_rating_list(request.args.get("r")))
    body = {"ratings": [{"movie_id": m, "rating": r} for m, r in ratings.pairs()]}
    response = Response(_json(body), mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="my-ratings.json"'
    return response


async def _visitor(args: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """Apply set=/remove=/from_user=, recommend, and build everything the templates show."""
    context: dict[str, Any] = {
        "form": {name: args.get(name, "") for name in KEPT},
        "ratings": Ratings((), ()),
        "rated": [],
        "results": None,
        "error": None,
        "error_field": None,
        "address": "/rate",
        "limits": {"n": MAX_N, "k": MAX_K, "default_n": DEFAULT_N, "default_k": DEFAULT_K},
        "algorithms": engine().algorithms(),
        "default_algorithm": engine().default_algorithm(),
        "genres": engine().genres(),
        "status": engine().status,
        "films": await off_loop(engine().popular_movies, STARTERS),
        "query": "",
        "list_id": "found",
    }
    try:
        pairs = parse_rating_list(args.get("r"))
        if args.get("from_user"):
            pairs = await off_loop(engine().user_ratings, parse_user_id(args.get("from_user")))
        if args.get("set"):
            movie_id, value = parse_rating_pair(args.get("set"), "set")
            pairs = [*(p for p in pairs if p[0] != movie_id), (movie_id, value)]
        if args.get("remove"):
            removed = parse_user_id(args.get("remove"))
            pairs = [p for p in pairs if p[0] != removed]
        ratings = await off_loop(engine().check_ratings, pairs)
        context["ratings"] = ratings
        context["form"]["r"] = ratings.as_text()
        n, k = parse_n(args.get("n")), parse_k(args.get("k"))
        algorithm = parse_algorithm(args.get("algorithm"))
        filters = parse_filters(args, context["genres"])
        context["address"] = _address(context["form"])
        context["rated"] = list(
            zip(await off_loop(engine().movies, ratings.movie_ids), ratings.values, strict=True)
        )
        if len(ratings):
            context["results"], _ = await off_loop(
                engine().recommend_for_ratings,
                ratings.pairs(),
                n,
                k,
                algorithm,
                filters,
            )
        return context, 200
    except (InvalidInput, InvalidRatings, UnknownUser, AlgorithmUnavailable) as exc:
        status, context["error"], context["error_field"] = in_place(exc, user_field="from_user")
        return context, status


def _address(form: Mapping[str, str]) -> str:
    """The canonical address of this state: only non-empty kept fields, ratings first."""
    kept = {name: form[name] for name in KEPT if form.get(name)}
    return "/rate" + (f"?{urlencode(kept, safe=':,')}" if kept else "")


def _json(body: object) -> str:
    return json.dumps(body, indent=1) + "\n"
