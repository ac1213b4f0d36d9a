"""The home page's results fragment, answered before Quart: from the cache, or computed.

An htmx search asks for one fragment, `GET /?user_id=...` with `HX-Request: true`, and it
is most of what the site serves. Quart's own work for it (a request object, its context, the
routing, the before- and after-request hooks, a response object) cost more than a cached
answer: 0.3 ms of the 0.8 a cached fragment took, beside 0.5 for a bare Quart app's
constant; and 0.4 ms of CPU of an uncached one's 1.8 under wrk. This layer asks the
Service for the fragment itself, `Service.recommend` as the route would ask it (the answer
cache first, else computed, presented and compressed), and sends the bytes with the headers
the route would have given them: the request id, the metrics and the access line are those
of `observe`, the security headers those of `middleware`. The fragment's template needs no
request to be rendered (`pages.results_fragment`).

Only the plainest form of the request is answered here, a query of the form's own fields
with nothing to unquote, from a client that accepts a coding, so that reading it here and
in Quart cannot differ. Anything else, and any request the Service refuses (an unknown user,
a bad count, not ready yet), goes on to Quart unchanged, which answers as it always has.
"""

from __future__ import annotations

import re
import time

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)

from app import logs, metrics
from app.engine import Service
from app.web.errors import KNOWN_ERRORS
from app.web.middleware import RAW_SECURITY_HEADERS, preferred_coding
from app.web.observe import REQUEST_ID_HEADER, log_access
from app.web.pages import ENCODED_VARY, FORM_FIELDS
from app.web.params import Query, parse_query

ROUTE = "/"
"""The route these fragments belong to, for the metrics and the access line."""
# Letters, digits and a few marks only: no "%" or "+" to unquote, no ";" Werkzeug splits on.
_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_=&.-]{1,200}")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")
_VARY = ENCODED_VARY["Vary"].encode("latin-1")
_HTML = b"text/html; charset=utf-8"


class ResultsFragments:
    """ASGI middleware: an htmx request for a known user's results, answered before Quart."""

    def __init__(self, app: ASGIFramework, service: Service, access_log: bool = False) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Send the results fragment if the request asks for one the Service gives; else pass on."""
        started = time.perf_counter()
        if scope["type"] != "http" or (asked := self._asked(scope)) is None:
            await self.app(scope, receive, send)
            return
        query, coding, asked_id = asked
        request_id = logs.request_id(asked_id)
        logs.REQUEST_ID.set(request_id)  # for any line logged while it is computed
        body = await self._fragment(query, coding)
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"vary", _VARY),
            (b"content-encoding", coding.encode("latin-1")),
            (b"content-type", _HTML),
            (b"content-length", str(len(body)).encode("latin-1")),
            (_REQUEST_ID, request_id.encode("latin-1")),
            *RAW_SECURITY_HEADERS,
        ]
        await send(
            HTTPResponseStartEvent(
                type="http.response.start", status=200, headers=headers, trailers=False
            )
        )
        await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
        seconds = time.perf_counter() - started
        if self.access_log:
            client = scope.get("client")
            log_access("GET", ROUTE, ROUTE, 200, seconds, client[0] if client else None)
        metrics.observe_request(ROUTE, "GET", 200, seconds)

    async def _fragment(self, query: Query, coding: str) -> bytes | None:
        """The fragment for `query` in `coding`, or None for the route to answer."""
        try:
            reply = await self.service.recommend(
                query.user_id, query.n, query.k, query.algorithm, presented=True, coding=coding
            )
        except Exception:
            # Refused (an unknown user, a bad count, not ready yet) or a fault of ours: the
            # route meets it again and answers as it always has, with its message or its 500.
            return None
        return reply.body

    def _asked(self, scope: HTTPScope) -> tuple[Query, str, str | None] | None:
        """The query, the coding and the client's request id, if this request is one to answer."""
        if scope["method"] != "GET" or scope["path"] != ROUTE:
            return None
        raw_query = scope["query_string"]
        if not _PLAIN_QUERY.fullmatch(raw_query):
            return None
        # The first of each, as the route reads them (Werkzeug's Headers.get).
        first: dict[bytes, str] = {}
        for header, raw in scope["headers"]:
            first.setdefault(header.lower(), raw.decode("latin-1"))
        if first.get(b"hx-request") != "true" or first.get(b"hx-history-restore-request") == "true":
            return None
        coding = preferred_coding(first.get(b"accept-encoding"))
        if coding is None:
            return None
        args: dict[str, str] = {}
        for pair in raw_query.decode("ascii").split("&"):
            name, _, value = pair.partition("=")
            if name not in FORM_FIELDS:
                return None
            args.setdefault(name, value)
        try:
            query = parse_query(args)
        except KNOWN_ERRORS:
            return None  # the route says what is wrong, as it always has
        return (query, coding, first.get(_REQUEST_ID)) if query is not None else None
