"""A results fragment the Service already keeps, sent without going through Quart.

Most requests for the home page's results are answered from the answer cache, and then
Quart's own work (a request object, its context, the routing, the before- and after-request
hooks, a response object) cost more than the answer: 0.3 ms of the 0.8 a cached fragment
took, beside 0.5 for a bare Quart app's constant. This layer looks the fragment up first,
under the Service's own key (`Service.kept_fragment`), and sends the kept bytes itself with
the headers the route would have given them: the request id, the metrics and the access line
are those of `observe`, the security headers those of `middleware`. Anything else, a miss
included, goes on to Quart unchanged, which answers as it always has.

Only the plainest form of the request is looked up here, a query of the form's own fields
with nothing to unquote, so that reading it here and in Quart cannot differ.
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
from app.engine import NotReady, Service
from app.web.errors import KNOWN_ERRORS
from app.web.middleware import RAW_SECURITY_HEADERS, preferred_coding
from app.web.observe import REQUEST_ID_HEADER, log_access
from app.web.pages import ENCODED_VARY, FORM_FIELDS
from app.web.params import parse_query

ROUTE = "/"
"""The route these fragments belong to, for the metrics and the access line."""
# Letters, digits and a few marks only: no "%" or "+" to unquote, no ";" Werkzeug splits on.
_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_=&.-]{1,200}")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")
_VARY = ENCODED_VARY["Vary"].encode("latin-1")
_HTML = b"text/html; charset=utf-8"
# What the route answers with an error (or the loading card): left to it.
_DECLINED: tuple[type[Exception], ...] = (*KNOWN_ERRORS, NotReady)


class KeptFragments:
    """ASGI middleware: an htmx request for a known user's results, answered from the cache."""

    def __init__(self, app: ASGIFramework, service: Service, access_log: bool = False) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Send the kept fragment if there is one; pass anything else on."""
        started = time.perf_counter()
        found, client = None, None
        if scope["type"] == "http":
            found, client = self._kept(scope), scope.get("client")
        if found is None:
            await self.app(scope, receive, send)
            return
        body, coding, asked_id = found
        request_id = logs.request_id(asked_id)
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
            logs.REQUEST_ID.set(request_id)
            log_access("GET", ROUTE, ROUTE, 200, seconds, client[0] if client else None)
        metrics.observe_request(ROUTE, "GET", 200, seconds)

    def _kept(self, scope: HTTPScope) -> tuple[bytes, str, str | None] | None:
        """The kept body, its coding and the client's request id, if this request is one."""
        if scope["method"] != "GET" or scope["path"] != ROUTE:
            return None
        query = scope["query_string"]
        if not _PLAIN_QUERY.fullmatch(query):
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
        for pair in query.decode("ascii").split("&"):
            name, _, value = pair.partition("=")
            if name not in FORM_FIELDS:
                return None
            args.setdefault(name, value)
        try:
            asked = parse_query(args)
            if asked is None:
                return None
            body = self.service.kept_fragment(
                asked.user_id, asked.n, asked.k, asked.algorithm, coding
            )
        except _DECLINED:
            return None  # the route says what is wrong, as it always has
        return (body, coding, first.get(_REQUEST_ID)) if body is not None else None
