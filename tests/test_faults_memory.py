"""Rebuilds under load release the snapshots they replace (issue 24, item 3).

Run with `make faults` (`pytest -m faults`). A real two-worker server serves mixed traffic
(known users' pages, the rating page, the API) while `movierec build` writes a new snapshot
again and again; each worker switches to it. A snapshot still mapped by a worker after its
successor serves keeps its pages and, once renamed over, its disk space: `/proc/PID/maps`
shows it as "(deleted)".
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests import live
from tests.conftest import make_zip
from tests.live import Server, get, get_json, until
from tests.tiny import TINY_MOVIES, TINY_RATINGS

pytestmark = pytest.mark.faults

REBUILDS = 6
ALGORITHMS = "original,popularity"
LOAD_THREADS = 3
# A few pages a worker caches, and some it computes each time (n varies).
PATHS = (
    "/?user_id=1&n=5&k=5",
    "/?user_id=2&n={n}&k=3",
    "/?user_id=3&n=4&k=5&algorithm=popularity",
    "/rate?r=10:4.5,20:3",
    "/rate?r=10:5,30:{rating}&n={n}",
    "/api/users/4/recommendations?n={n}",
    "/api/users/1/similar?k=2",
    "/api/status",
)


@dataclass(frozen=True)
class Mapped:
    """The snapshot files one worker has mapped: all of them, and those renamed over since."""

    files: int
    deleted: int


def mapped_snapshots(pid: int) -> Mapped:
    """Count the distinct snapshot files in `pid`'s address space (one file may take several
    lines of /proc/PID/maps)."""
    files: set[str] = set()
    deleted: set[str] = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or ".snapshot" not in fields[5]:
            continue
        inode = fields[4]
        files.add(inode)
        if fields[5].endswith("(deleted)"):
            deleted.add(inode)
    return Mapped(len(files), len(deleted))


def post_json(url: str, body: object) -> int:
    """Status of a JSON POST (0 without an answer)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@contextlib.contextmanager
def mixed_load(server: Server) -> Iterator[list[int]]:
    """Clients asking for pages and API answers until the block ends; the statuses they got."""
    stop = threading.Event()
    statuses: list[int] = []

    def client(number: int) -> None:
        turn = number
        while not stop.is_set():
            turn += 1
            if turn % 5 == 0:
                ratings = [
                    {"movie_id": 10, "rating": 4.5},
                    {"movie_id": 50, "rating": 1 + turn % 4},
                ]
                statuses.append(post_json(server.url("/api/recommendations"), {"ratings": ratings}))
                continue
            path = PATHS[turn % len(PATHS)].format(n=1 + turn % 6, rating=1 + turn % 4)
            statuses.append(get(server.url(path)).status)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def served_ids(server: Server, connections: int = live.READY_CONNECTIONS) -> set[str]:
    """The snapshot ids /api/status gives on `connections` new connections (any worker)."""
    return {
        str(get_json(server.url("/api/status"))[1].get("snapshot_id")) for _ in range(connections)
    }


def switched_from(server: Server, old: set[str]) -> bool:
    """True when new connections all see one snapshot, none of `old`."""
    ids = served_ids(server)
    return len(ids) == 1 and not ids & old


def test_rebuilds_under_load_keep_at_most_one_old_snapshot_mapped(tmp_path: Path) -> None:
    source = tmp_path / "ml-tiny.zip"
    source.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    first = live.build(source, tmp_path, ALGORITHMS=ALGORITHMS)
    assert first.returncode == 0, first.stderr
    environment = {
        "WORKERS": "2",
        "ALGORITHMS": ALGORITHMS,
        "METRICS_PORT": str(live.free_port()),
    }
    with live.serving(source, tmp_path, **environment) as server:
        server.wait_ready(fitted=True)
        workers = server.workers()
        assert len(workers) == 2

        def counts() -> dict[int, Mapped]:
            return {pid: mapped_snapshots(pid) for pid in workers}

        ids = served_ids(server)
        assert len(ids) == 1 and "" not in ids, ids
        with mixed_load(server) as statuses:
            for _ in range(REBUILDS):
                old = ids
                built = live.build(source, tmp_path, ALGORITHMS=ALGORITHMS)
                assert built.returncode == 0, built.stderr
                # Every worker has switched once new connections all see one newer id.
                until(
                    partial(switched_from, server, old),
                    15,
                    lambda: f"not every worker switched:\n{server.output()[-2000:]}",
                )
                ids = served_ids(server)
            # Under load: the snapshot served, and at most one old one still held by a
            # request that was running at the switch.
            under_load = counts()
            print(f"after {REBUILDS} rebuilds, under load: {under_load}")
            assert all(m.files <= 2 and m.deleted <= 1 for m in under_load.values()), under_load
        assert server.workers() == workers, "a worker was replaced during the test"
        assert statuses and set(statuses) <= {200}, sorted(set(statuses))
        # Once the requests have ended, only the snapshot served is mapped.
        until(
            lambda: all(m == Mapped(1, 0) for m in counts().values()),
            10,
            lambda: f"snapshots mapped per worker after {REBUILDS} rebuilds: {counts()}",
        )
        print(f"after {REBUILDS} rebuilds, idle: {counts()}")
