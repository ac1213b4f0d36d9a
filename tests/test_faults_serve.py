"""Issue 24's serving faults against a real server on 127.0.0.1: clients that open a connection
per request, a hung worker, answers Hypercorn makes itself, and running out of memory.

Run with `make faults` (`pytest -m faults`). Each case bounds its time and traffic and stops
what it started.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import resource
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import live
from tests.conftest import require_real_zip
from tests.live import Server, get, until

pytestmark = pytest.mark.faults

CLOSE_WAIT = "08"  # the state's number in /proc/net/tcp


Start = Callable[..., Server]
"""serve(source, workers=2, preexec_fn=None, **environment) -> a started Server."""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Start]:
    """Start servers (tests/live.py) with extra environment; every one is stopped at the end."""
    started: list[Server] = []

    def start(
        source: Path,
        workers: int = 2,
        preexec_fn: Callable[[], object] | None = None,
        **environment: str,
    ) -> Server:
        server = live.start(
            source, tmp_path, preexec_fn=preexec_fn, WORKERS=str(workers), **environment
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def limit(kind: int, value: int) -> Callable[[], None]:
    """A preexec_fn that sets both limits of `kind` (a resource.RLIMIT_*) to `value`."""

    def apply() -> None:
        resource.setrlimit(kind, (value, value))

    return apply


def close_wait(port: int) -> int:
    """Sockets of this machine on local `port` in CLOSE-WAIT: the peer closed, this side not yet."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == CLOSE_WAIT:
                count += 1
    return count


def fresh_connection_get(port: int, path: str, timeout: float = 3.0) -> bytes:
    """GET `path` on a new connection without `Connection: close`, read the answer, close.

    As scripts and health checkers do: HTTP/1.1 keeps the connection open by default, and the
    client simply closes it once it has the answer. The status line, or b"" when reset.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            return head.split(b"\r\n", 1)[0] if len(body) >= length else b""
    except OSError:
        return b""


class FreshConnections:
    """`threads` clients that GET a path on a new connection each time, for `seconds`."""

    def __init__(self, port: int, path: str, threads: int, seconds: float) -> None:
        self.port, self.path = port, path
        self.deadline = time.monotonic() + seconds
        self.answered = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        """Run every client to the deadline."""
        for thread in self.threads:
            thread.start()
        for thread in self.threads:
            thread.join()

    def client(self) -> None:
        """One client's loop."""
        while time.monotonic() < self.deadline:
            status = fresh_connection_get(self.port, self.path)
            with self.lock:
                if status.split(b" ")[1:2] == [b"200"]:
                    self.answered += 1
                else:
                    self.failed += 1


def test_clients_that_close_after_each_answer_are_released_at_once(
    serve: Start, tiny_zip: Path
) -> None:
    # 256 open files: about 90 connections per worker, reached in a fraction of a second by
    # connections that stay in CLOSE-WAIT until Hypercorn's 5 s keep-alive timeout.
    server = serve(tiny_zip, preexec_fn=limit(resource.RLIMIT_NOFILE, 256))
    server.wait_ready(30)
    load = FreshConnections(server.port, "/healthz", threads=4, seconds=4)
    load.run()
    lingering = close_wait(server.port)
    print(f"{load.answered} answered, {load.failed} failed, {lingering} in CLOSE-WAIT after")
    assert load.answered > 200
    assert load.failed == 0
    # A connection the client closed is closed at once by the server; allow the last few.
    assert lingering <= 8
    assert server.stop() == 0


def test_a_hung_worker_is_killed_and_replaced(serve: Start, tiny_zip: Path) -> None:
    server = serve(tiny_zip, WORKER_TIMEOUT="2")
    server.wait_ready(30)
    until(lambda: len(server.workers()) == 2, 10, server.output)
    hung = min(server.workers())
    os.kill(hung, signal.SIGSTOP)
    try:
        # 2 s without a heartbeat, checked every 0.2 s, then a replacement that starts.
        replaced_in = until(
            lambda: hung not in server.workers() and len(server.workers()) == 2,
            10,
            lambda: f"worker {hung} still there:\n{server.output()[-2000:]}",
        )
        serving_in = replaced_in + server.wait_ready(10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    print(f"replaced in {replaced_in:.1f} s, every connection answered after {serving_in:.1f} s")
    assert serving_in < 8
    assert f"worker {hung} missed its heartbeat for 2 s: killing it" in server.output()
    # Every fresh connection, not most: the stopped worker no longer holds its share of them.
    assert all(get(server.url("/healthz"), timeout=2).status == 200 for _ in range(40))
    assert server.stop() == 0


def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send `request` as it is on a new connection: the answer's status and headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    status_line, *lines = received.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v.strip() for k, v in headers.items()}


SECURITY = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000, 431),
        (b"POST /api/recommendations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
    ids=["malformed", "headers-too-large", "unknown-transfer-coding"],
)
def test_answers_hypercorn_makes_itself_carry_the_security_headers(
    serve: Start, tiny_zip: Path, request_bytes: bytes, status: int
) -> None:
    server = serve(tiny_zip, workers=1)
    server.wait_ready(30)
    usual = get(server.url("/healthz")).headers
    assert all(name in usual for name in SECURITY)
    seen, headers = raw_answer(server.port, request_bytes)
    assert seen == status
    assert {name: headers.get(name) for name in SECURITY} == {
        name: usual[name] for name in SECURITY
    }
    assert server.stop() == 0


def movie_ids(source: Path) -> list[int]:
    """Every movie id in a MovieLens zip's movies.csv."""
    with zipfile.ZipFile(source) as archive:
        name = next(n for n in archive.namelist() if n.endswith("movies.csv"))
        with archive.open(name) as movies:
            return [int(row["movieId"]) for row in csv.DictReader(io.TextIOWrapper(movies))]


def post_ratings(server: Server, movies: list[int]) -> tuple[int, bytes]:
    """POST a rating of 4 for each of `movies` to /api/recommendations: status and body."""
    body = json.dumps({"ratings": [{"movie_id": m, "rating": 4.0} for m in movies]}).encode()
    request = urllib.request.Request(
        server.url("/api/recommendations?n=50&k=100"),
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def address_space(pid: int) -> int:
    """Bytes of address space `pid` has mapped now (VmSize)."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


def test_out_of_memory_is_answered_503_and_the_server_recovers(serve: Start) -> None:
    source = require_real_zip()
    movies = movie_ids(source)
    server = serve(source)
    server.wait_ready(120)
    until(lambda: len(server.workers()) == 2, 10, server.output)
    for _ in range(6):  # every worker has its threads and caches before the limit
        assert post_ratings(server, movies[:20])[0] == 200
    # As `prlimit --as` would: 8 MiB more address space than each worker has, so that the
    # requests below, of 9,000 ratings each (about 400 KB of JSON), run out of memory.
    limited = server.workers()
    for pid in limited:
        room = address_space(pid) + (8 << 20)
        resource.prlimit(pid, resource.RLIMIT_AS, (room, room))
    seen: Counter[int] = Counter()
    for extra in range(30):
        status, body = post_ratings(server, movies[: 9000 - extra])
        seen[status] += 1
        if status == 503:
            assert b"short of memory" in body, body
    print(f"answers: {dict(seen)}; workers {sorted(limited)} -> {sorted(server.workers())}")
    assert seen[503] >= 1
    assert set(seen) <= {200, 503, 0}, seen  # no 500; 0: a worker that exits resets its own
    # Any worker that could not go on has been replaced, and every connection is answered.
    until(lambda: len(server.workers()) == 2, 10, server.output)
    recovered_in = server.wait_ready(30)
    print(f"every connection answered again {recovered_in:.1f} s later")
    output = server.output()
    assert "Out of memory" in output
    assert "Traceback" not in output
    assert server.stop() == 0
