"""Fixtures, each built on the last: settings -> tiny_zip -> dataset_server -> app -> client."""

from __future__ import annotations

import asyncio
import io
import os
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from quart import Quart
from quart.typing import TestAppProtocol, TestClientProtocol
from selectolax.lexbor import LexborHTMLParser, LexborNode

from app import create_app
from app.config import Settings

# The tiny hand-made release is defined once, in tests/tiny.py; re-exported here.
from tests.tiny import TINY as TINY
from tests.tiny import TINY_MOVIES as TINY_MOVIES
from tests.tiny import TINY_RATINGS as TINY_RATINGS
from tests.tiny import frame as frame

# PostgreSQL for the tests (`postgres`) and every night test on both engines (`database_url`).
pytest_plugins = ["tests.postgres"]

# The real release sits in ../shared/data beside the checkout; MOVIELENS_TEST_ZIP overrides it.
REAL_ZIP = Path(
    os.environ.get("MOVIELENS_TEST_ZIP")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
)
IN_CI = os.environ.get("CI") == "true"

# The same kind of release in the older layouts. ml-1m/ml-10m: "::" separated, not sorted by
# movie, titles with colons, Latin-1 (ml-1m) or UTF-8 (ml-10m), half stars from ml-10m on.
DAT_RATINGS = """1::20::3.5::964981247
1::10::5::964982703
2::30::4::964982931
2::10::4.5::964982224
"""
DAT_MOVIES = """10::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi
20::Café Society: A Story (1995)::Comedy
30::Heat (1995)::(no genres listed)
"""
# ml-100k: tab-separated ratings in no order; u.item pipe-separated in Latin-1 with 19 flags.
UDATA_RATINGS = "2\t30\t4\t881250949\n1\t20\t3\t891717742\n1\t10\t5\t878887116\n"
UITEM_MOVIES = (
    "10|Toy Story (1995)|01-Jan-1995||http://imdb/toy|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "20|Café Lumière|01-Jan-2003||http://imdb/cafe|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
    "30|unknown|||http://imdb/unknown|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
)
UGENRE = """unknown|0
Action|1
Adventure|2
Animation|3
Children's|4
Comedy|5
Crime|6
Documentary|7
Drama|8
Fantasy|9
Film-Noir|10
Horror|11
Musical|12
Mystery|13
Romance|14
Sci-Fi|15
Thriller|16
War|17
Western|18
"""
# Each layout's files as bytes, keyed by a release that uses it.
LAYOUT_FILES: dict[str, dict[str, bytes]] = {
    "ml-latest-small": {
        "ratings.csv": TINY_RATINGS.encode(),
        "movies.csv": TINY_MOVIES.encode(),
    },
    "ml-1m": {"ratings.dat": DAT_RATINGS.encode(), "movies.dat": DAT_MOVIES.encode("latin-1")},
    "ml-10m": {"ratings.dat": DAT_RATINGS.encode(), "movies.dat": DAT_MOVIES.encode("utf-8")},
    "ml-100k": {
        "u.data": UDATA_RATINGS.encode(),
        "u.item": UITEM_MOVIES.encode("latin-1"),
        "u.genre": UGENRE.encode(),
    },
}


def make_zip(files: dict[str, str | bytes], *, folder: str = "ml-tiny") -> bytes:
    """A zip holding `files` under `folder/`, as GroupLens lays out its releases."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(f"{folder}/{name}" if folder else name, content)
    return buffer.getvalue()


def require_real_zip() -> Path:
    """The real ml-latest-small zip; skips outside CI when it is absent, fails in CI."""
    if not REAL_ZIP.is_file():
        if IN_CI:
            pytest.fail(f"{REAL_ZIP} is missing; CI must have the shared dataset")
        pytest.skip(f"{REAL_ZIP} is not present on this machine")
    return REAL_ZIP


@pytest.fixture
def tiny_zip_bytes() -> bytes:
    """The tiny release as zip bytes."""
    return make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES})


@pytest.fixture
def tiny_zip(tmp_path: Path, tiny_zip_bytes: bytes) -> Path:
    """The tiny release as a zip file on disk."""
    path = tmp_path / "ml-tiny.zip"
    path.write_bytes(tiny_zip_bytes)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for tests: a private data folder, short timeouts, only the original algorithm."""
    return Settings(
        source=str(tmp_path / "missing.zip"),
        data_dir=tmp_path / "data",
        download_timeout=2.0,
        download_retries=1,
        download_backoff=0.01,
        # The hand-worked answers are the original's; tests of the others enable them.
        algorithms=("original",),
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""What answers one path of the DatasetServer."""


@dataclass
class DatasetServer:
    """An aiohttp server on 127.0.0.1 that serves zips and counts the requests per path."""

    base_url: str
    routes: dict[str, Handler]
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        """Absolute URL of `path` on this server."""
        return f"{self.base_url}{path}"

    def serve_bytes(self, path: str, body: bytes, content_type: str = "application/zip") -> str:
        """Serve `body` at `path`; returns the URL."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type=content_type)

        self.routes[path] = handler
        return self.url(path)

    def serve(self, path: str, handler: Handler) -> str:
        """Serve `path` with a custom handler; returns the URL."""
        self.routes[path] = handler
        return self.url(path)


@pytest.fixture
async def dataset_server() -> AsyncIterator[DatasetServer]:
    """A local HTTP server for download tests; unknown paths answer 404."""
    routes: dict[str, Handler] = {}
    server: DatasetServer | None = None

    async def dispatch(request: web.Request) -> web.StreamResponse:
        assert server is not None
        server.hits[request.path] += 1
        handler = routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    application = web.Application()
    application.router.add_route("GET", "/{tail:.*}", dispatch)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server = DatasetServer(base_url=f"http://127.0.0.1:{port}", routes=routes)
    yield server
    await runner.cleanup()


@pytest.fixture
def app(settings: Settings, tiny_zip: Path) -> Quart:
    """The app configured with the tiny release as a local zip."""
    return create_app(settings.replace(source=str(tiny_zip)))


async def wait_until_settled(app: Quart, timeout: float = 10.0) -> None:
    """Wait until the engine is ready or has failed."""
    service = app.extensions["service"]
    for _ in range(int(timeout / 0.02)):
        if service.status.state.value != "loading":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"engine still loading after {timeout}s: {service.status}")


async def wait_until_available(
    client: TestClientProtocol, names: Collection[str] | None = None, timeout: float = 120
) -> None:
    """Wait until /api/algorithms lists `names` (every algorithm when None) as ready to serve."""
    deadline = time.monotonic() + timeout
    listed: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        listed = (await (await client.get("/api/algorithms")).get_json())["algorithms"]
        wanted = [a for a in listed if names is None or a["name"] in names]
        if wanted and all(a["availability"] == "ready" for a in wanted):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready to serve after {timeout}s: {listed}")


@pytest.fixture
async def ready_app(app: Quart) -> AsyncIterator[TestAppProtocol]:
    """The app, started, with its model built."""
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        assert app.extensions["service"].ready, app.extensions["service"].status
        yield test_app


@pytest.fixture
def client(ready_app: TestAppProtocol) -> TestClientProtocol:
    """A test client for the ready app."""
    return ready_app.test_client()


def parse(html: str) -> LexborHTMLParser:
    """A page or a fragment as a tree (a fragment's elements land in <body>)."""
    return LexborHTMLParser(html)


def one(tree: LexborHTMLParser | LexborNode, selector: str) -> LexborNode:
    """The single element that matches `selector`; fails unless there is exactly one."""
    found = tree.css(selector)
    assert len(found) == 1, f"{len(found)} elements match {selector!r}"
    return found[0]


def text_of(node: LexborNode) -> str:
    """The text a reader sees in `node`, whitespace collapsed."""
    return " ".join(node.text().split())


def texts(tree: LexborHTMLParser | LexborNode, selector: str) -> list[str]:
    """The text of every element that matches `selector`, in document order."""
    return [text_of(node) for node in tree.css(selector)]
