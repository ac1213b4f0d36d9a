"""What every blueprint uses: the Service, fragment-or-page, headers, limits, templates."""

from __future__ import annotations

from typing import Any

import jinja2
from quart import Quart, current_app, request, url_for

from app.engine import DEFAULT_K, DEFAULT_N, MAX_K, MAX_N, Service
from app.web.rows import FilmRows

LIMITS = {"n": MAX_N, "k": MAX_K, "default_n": DEFAULT_N, "default_k": DEFAULT_K}
"""The list sizes the forms offer."""
VARY = {"Vary": "HX-Request, HX-History-Restore-Request"}
"""Pages and fragments share URLs: caches must keep them apart."""
RETRY_SECONDS = 5
"""How soon to try again when the database cannot be reached (a 503's Retry-After)."""


def service() -> Service:
    """The Service this app serves."""
    found: Service = current_app.extensions["service"]
    return found


def query_args() -> dict[str, str]:
    """The query string as a plain dict, the first value of each name.

    Werkzeug's MultiDict.get() raises and catches an HTTP exception for every missing name,
    which showed in the profile of cached answers; a plain dict answers a miss for free.
    """
    return request.args.to_dict()


def is_fragment_request() -> bool:
    """True for htmx requests that swap a part of the page.

    A history-restore request (the browser's cache of the page was lost) also carries
    HX-Request, but it replaces the whole body and so needs the full page.
    """
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def fragment_headers(pushed: bool) -> dict[str, str]:
    """Vary, and for a failed query, keep it out of the address bar and the history."""
    return VARY if pushed else {**VARY, "HX-Push-Url": "false"}


def install_templates(app: Quart) -> jinja2.Environment:
    """The one template environment, for pages and fragments, with url_for in both.

    Synchronous, so that a fragment can be rendered in the same worker thread that computed
    its answer; Quart's own (asynchronous) environment is not used. Worker threads run in a
    copy of the request's context, so url_for works there too. `film_parts` gives the
    parts of a film's row that are the same for everyone, rendered once (app/web/rows.py).
    """
    loader = app.jinja_loader
    assert loader is not None
    environment = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(("html", "htm", "xml")),
        auto_reload=False,
    )
    environment.globals.update(url_for=url_for, film_parts=FilmRows(environment))
    app.extensions["templates"] = environment
    return environment


def render(template: str, **context: Any) -> str:
    """Render a page or a fragment (blocking: a few hundred microseconds for a fragment)."""
    environment: jinja2.Environment = current_app.extensions["templates"]
    return environment.get_template(template).render(context)
