"""How to tell an htmx fragment request from a request for the whole page."""

from __future__ import annotations

from quart import request


def is_fragment_request() -> bool:
    """True for htmx requests that swap a part of the page.

    A history-restore request (the browser's cache of the page was lost) also carries
    HX-Request, but it replaces the whole body and so needs the full page.
    """
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
