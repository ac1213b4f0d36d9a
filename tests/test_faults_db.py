"""The nights' database failing under a real server: PostgreSQL restarted mid-night, the SQLite
file read-only or missing, two members writing at once.

What must hold: night requests answer 503 with Retry-After while the database cannot be used,
and recover by themselves when it can; the rest of the site keeps answering; no acknowledged
change is lost and none is half-written.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import live
from tests.conftest import IN_CI, one, parse, text_of
from tests.postgres import Postgres
from tests.test_readonly_data import PROBE_WROTE, unshare_command

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
# Bind the database's folder onto itself read-only, prove it cannot be written, then serve.
READ_ONLY_SERVE = (
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 1; '
    f'if touch "$1/.probe" 2>/dev/null; then exit {PROBE_WROTE}; fi; '
    'exec "$2" -m app serve'
)


def call(
    method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower case) and JSON body of one request (status 0: no answer)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else b"" if method != "GET" else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            found = {k.lower(): v for k, v in answer.headers.items()}
            return answer.status, found, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        found = {k.lower(): v for k, v in error.headers.items()}
        return error.code, found, json.loads(raw) if raw else None
    except OSError:
        return 0, {}, None


class Night:
    """A night on a live server, driven through the API."""

    def __init__(self, server: live.Server) -> None:
        self.server = server
        status, _, body = call("POST", server.url("/api/nights"))
        assert status == 201, (status, body, server.output()[-2000:])
        self.id = body["id"]
        self.tokens: dict[str, str] = {}

    def url(self, path: str = "") -> str:
        """The API's URL of this night (and `path` under it)."""
        return self.server.url(f"/api/nights/{self.id}{path}")

    def join(self, name: str) -> str:
        """A new member's id."""
        status, _, body = call("POST", self.url("/members"), {"name": name})
        assert status == 201, (status, body)
        self.tokens[body["member_id"]] = body["token"]
        return str(body["member_id"])

    def rate(self, member: str, ratings: list[tuple[int, float]]) -> int:
        """Replace the member's ratings; the status."""
        body = {"ratings": [{"movie_id": m, "rating": r} for m, r in ratings]}
        return call("PUT", self.url(f"/members/{member}/ratings"), body, self.tokens[member])[0]

    def ratings(self) -> dict[str, list[tuple[int, float]]]:
        """Every member's ratings, as stored."""
        status, _, body = call("GET", self.url())
        assert status == 200, (status, body)
        return {
            m["member_id"]: [(r["movie_id"], r["rating"]) for r in m["ratings"]]
            for m in body["members"]
        }


def assert_unavailable(status: int, headers: dict[str, str], body: Any) -> None:
    """A 503 with Retry-After and the API's error, naming nothing of the server."""
    assert status == 503, (status, body)
    assert int(headers["retry-after"]) >= 1
    message = body["error"]["message"]
    assert "unavailable" in message and "/" not in message and "127.0.0.1" not in message


def assert_the_rest_works(server: live.Server) -> None:
    """The pages and the recommendations answer as ever."""
    assert live.get(server.url("/")).status == 200
    assert live.get(server.url("/api/users/1/recommendations")).status == 200
    assert live.get(server.url("/readyz")).status == 200


def test_postgres_restarted_mid_night_loses_no_rating_and_nights_recover(
    postgres: Postgres, tiny_zip: Path, tmp_path: Path
) -> None:
    url = postgres.new_database()
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=url, WORKERS="2") as server:
        server.wait_ready()
        night = Night(server)
        ana, ben = night.join("Ana"), night.join("Ben")
        assert night.rate(ana, [(10, 5.0), (20, 4.0)]) == 200
        assert night.rate(ben, [(30, 2.5)]) == 200
        postgres.stop()
        try:
            # Each worker, whichever answers: the outage is told, not hidden or crashed on.
            for _ in range(4):
                assert_unavailable(*call("GET", night.url()))
                assert_unavailable(*call("POST", server.url("/api/nights")))
                status = night.rate(ana, [(50, 1.0)])
                assert status == 503
            assert_the_rest_works(server)
        finally:
            postgres.start()
        # No restart of the app: each worker's next request reconnects by itself.
        live.until(lambda: call("GET", night.url())[0] == 200, 20, server.output)
        for _ in range(8):
            assert night.ratings() == {ana: [(10, 5.0), (20, 4.0)], ben: [(30, 2.5)]}
        assert night.rate(ana, [(50, 1.0)]) == 200
        assert night.ratings()[ana] == [(50, 1.0)]
    assert "Traceback" not in server.output()


def test_two_members_writing_at_once_both_keep_their_changes(
    database_url: str, tiny_zip: Path, tmp_path: Path
) -> None:
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=database_url, WORKERS="2") as server:
        server.wait_ready()
        night = Night(server)
        members = [night.join("Ana"), night.join("Ben")]
        films = [10, 20, 30, 40, 50, 60]
        refused: list[int] = []
        start = threading.Barrier(len(members))

        def write(member: str, value: float) -> None:
            start.wait()
            for count in range(1, len(films) + 1):
                status = night.rate(member, [(film, value) for film in films[:count]])
                if status != 200:
                    refused.append(status)

        threads = [
            threading.Thread(target=write, args=(member, 1.0 + index))
            for index, member in enumerate(members)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert refused == []
        assert night.ratings() == {
            members[0]: [(film, 1.0) for film in films],
            members[1]: [(film, 2.0) for film in films],
        }
    assert "Traceback" not in server.output()


def test_a_sqlite_file_removed_while_serving_is_503_and_not_recreated_empty(
    tiny_zip: Path, tmp_path: Path
) -> None:
    database = tmp_path / "nights" / "movienight.sqlite3"
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=f"sqlite:///{database}") as server:
        server.wait_ready()
        night = Night(server)
        ana = night.join("Ana")
        for leftover in database.parent.glob("movienight.sqlite3*"):
            leftover.unlink()
        assert_unavailable(*call("GET", night.url()))
        assert_unavailable(*call("POST", server.url("/api/nights")))
        assert night.rate(ana, [(10, 5.0)]) == 503
        assert_the_rest_works(server)
        # Nothing was written into a fresh, empty file in its place.
        assert not database.exists()
    assert "Traceback" not in server.output()


def test_a_database_folder_that_cannot_exist_is_503_and_the_rest_works(
    tiny_zip: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    url = f"sqlite:///{blocker / 'movienight.sqlite3'}"
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=url) as server:
        server.wait_ready()
        assert_unavailable(*call("POST", server.url("/api/nights")))
        assert_unavailable(*call("GET", server.url("/api/nights/AAAAAAAAAAAAAAAAAAAAAA")))
        assert_the_rest_works(server)
    printed = server.output()
    assert "Movie nights are unavailable" in printed and "Traceback" not in printed


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


def post_form(url: str, fields: dict[str, str]) -> live.Answer:
    """A form POSTed; its answer as sent (a redirect is not followed)."""
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as answer:
            found = {k.lower(): v for k, v in answer.headers.items()}
            return live.Answer(answer.status, found, answer.read())
    except urllib.error.HTTPError as error:
        found = {k.lower(): v for k, v in error.headers.items()}
        return live.Answer(error.code, found, error.read())


def test_saved_profiles_say_what_went_undone_while_the_database_is_gone(
    tiny_zip: Path, tmp_path: Path
) -> None:
    database = tmp_path / "db" / "movienight.sqlite3"
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=f"sqlite:///{database}") as server:
        server.wait_ready()
        saved = post_form(server.url("/me"), {"r": "10:4.5,20:3"})
        assert saved.status == 303, saved
        page = saved.headers["location"]
        assert live.get(server.url(page)).status == 200
        for leftover in database.parent.glob("movienight.sqlite3*"):
            leftover.unlink()
        answers = {
            "Not available": live.get(server.url(page)),
            "Not saved": post_form(server.url(page), {"set": "30:4"}),
            "Not forgotten": post_form(server.url(f"{page}/forget"), {"confirm": "yes"}),
            "Could not save": post_form(server.url("/me"), {"r": "10:4.5"}),
        }
        for title, answer in answers.items():
            assert answer.status == 503, (title, answer.status)
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.headers["cache-control"] == "no-store"
            heading = text_of(one(parse(answer.body.decode()), "h1"))
            assert heading == f"503 · {title}"
        assert_the_rest_works(server)
        assert not database.exists()
    assert "Traceback" not in server.output()


@pytest.fixture
def mount_namespace() -> list[str]:
    """The unshare prefix for a private mount namespace; skipped where none can be made."""
    problem = None
    if shutil.which("unshare") is None:
        problem = "unshare (util-linux) is not installed"
    else:
        trial = subprocess.run(
            [*unshare_command(), "true"], capture_output=True, text=True, timeout=10, check=False
        )
        if trial.returncode != 0:
            problem = f"cannot make a mount namespace here: {trial.stderr.strip()}"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return unshare_command()


def test_a_read_only_sqlite_file_is_503_for_changes_and_nothing_is_half_written(
    tiny_zip: Path, tmp_path: Path, mount_namespace: list[str]
) -> None:
    folder = tmp_path / "nights"
    database = folder / "movienight.sqlite3"
    url = f"sqlite:///{database}"
    with live.serving(tiny_zip, tmp_path, DATABASE_URL=url) as server:
        server.wait_ready()
        night = Night(server)
        ana = night.join("Ana")
        assert night.rate(ana, [(10, 5.0)]) == 200
    before = database.read_bytes()
    port = live.free_port()
    log = tmp_path / "read-only.log"
    environment = live.environment_for(tiny_zip, tmp_path, PORT=str(port), DATABASE_URL=url)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*mount_namespace, "sh", "-c", READ_ONLY_SERVE, "sh", str(folder), sys.executable],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = live.Server(process, port, log)
    try:
        server.wait_ready()
        assert process.poll() != PROBE_WROTE, "the folder was writable: the test proves nothing"
        night.server = server
        assert_unavailable(*call("POST", server.url("/api/nights")))
        assert night.rate(ana, [(20, 1.0)]) == 503
        assert_unavailable(*call("POST", night.url("/members"), {"name": "Ben"}))
        assert_the_rest_works(server)
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    assert database.read_bytes() == before
    with sqlite3.connect(database) as connection:
        kept = connection.execute("SELECT movie_id, rating FROM member_ratings").fetchall()
        names = connection.execute("SELECT name FROM members").fetchall()
    assert kept == [(10, 5.0)] and names == [("Ana",)]
