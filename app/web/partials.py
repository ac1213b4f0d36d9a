"""Result fragments rendered off the event loop by a plain (synchronous) Jinja environment.

Quart renders templates asynchronously on the loop; for a list of films with their reasons
that is about 1.7 ms of the loop's time per answer, most of it the async machinery. The
partials htmx asks for need no request context (no url_for), so they can be rendered, like
the answer itself, in a worker thread.
"""

from __future__ import annotations

from typing import Any

import jinja2
from quart import Quart, current_app


def install(app: Quart) -> None:
    """Give the app a synchronous environment over the same templates, escaping alike."""
    loader = app.jinja_loader
    assert loader is not None
    environment = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(("html", "htm", "xml")),
        auto_reload=False,
    )
    environment.filters.update(app.jinja_env.filters)
    app.extensions["sync_templates"] = environment


def render(name: str, context: dict[str, Any]) -> str:
    """Render a partial; blocking, so call it through off_loop()."""
    environment: jinja2.Environment = current_app.extensions["sync_templates"]
    return environment.get_template(name).render(context)
