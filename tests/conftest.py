"""Fixtures, each built on the last: settings -> tiny_zip -> dataset_server -> app -> client."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from app import create_app
from app.config import Settings

# The real release sits in ../shared/data beside the checkout; MOVIELENS_TEST_ZIP overrides it.
REAL_ZIP = Path(
    os.environ.get("MOVIELENS_TEST_ZIP")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
)
IN_CI = os.environ.get("CI") == "true"

# A hand-made release small enough to work out by hand (see test_recommender.py):
# user 1 rated movies 10, 20; users 2-4 overlap with them in different amounts.
TINY_RATINGS = """userId,movieId,rating,timestamp
1,10,5.0,964982703
1,20,3.0,964981247
2,10,4.0,964982224
2,20,3.0,964983815
2,30,5.0,964982931
3,10,5.0,964982400
3,40,2.0,964980868
3,50,4.0,964982176
4,20,1.0,964984041
4,30,1.0,964984100
4,50,5.0,964983650
"""
TINY_MOVIES = """movieId,title,genres
10,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
20,"American President, The (1995)",Comedy|Drama|Romance
30,Heat (1995),Action|Crime|Thriller
40,<script>alert(1)</script> (2001),(no genres listed)
50,Babylon 5,Sci-Fi
60,Never Rated (1999),Drama
"""

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


@dataclass
class DatasetServer:
    """An aiohttp server on 127.0.0.1 that serves zips and counts the requests per path."""

    base_url: str
    routes: dict[str, Callable[[web.Request], object]]
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

    def serve(self, path: str, handler: Callable[[web.Request], object]) -> str:
        """Serve `path` with a custom handler; returns the URL."""
        self.routes[path] = handler
        return self.url(path)


@pytest.fixture
async def dataset_server() -> AsyncIterator[DatasetServer]:
    """A local HTTP server for download tests; unknown paths answer 404."""
    routes: dict[str, Callable[[web.Request], object]] = {}
    server: DatasetServer | None = None

    async def dispatch(request: web.Request) -> web.StreamResponse:
        assert server is not None
        server.hits[request.path] += 1
        handler = routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)  # type: ignore[misc, no-any-return]

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
def app(settings: Settings, tiny_zip: Path):  # type: ignore[no-untyped-def]
    """The app configured with the tiny release as a local zip."""
    return create_app(settings.replace(source=str(tiny_zip)))


async def wait_until_settled(app, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until the engine is ready or has failed."""
    engine = app.extensions["engine"]
    for _ in range(int(timeout / 0.02)):
        if engine.status.state.value != "loading":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"engine still loading after {timeout}s: {engine.status}")


@pytest.fixture
async def ready_app(app):  # type: ignore[no-untyped-def]
    """The app, started, with its model built."""
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        assert app.extensions["engine"].ready, app.extensions["engine"].status
        yield test_app


@pytest.fixture
def client(ready_app):  # type: ignore[no-untyped-def]
    """A test client for the ready app."""
    return ready_app.test_client()
