"""Faults an unlucky operator or a hostile client brings, each reproduced and survived.

Run with `make faults` (`pytest -m faults`). Every case talks to 127.0.0.1 only, bounds its
time and traffic, and stops what it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.data import snapshot as snapshot_file
from app.engine import Engine, Service, State
from app.logs import RepeatLimiter
from tests import live
from tests.conftest import make_zip
from tests.live import wait_for, workers_of
from tests.tiny import TINY_MOVIES, TINY_RATINGS

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def post(url: str, timeout: float = 2.0) -> int:
    """Status of an empty POST."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Server(live.Server):
    """`python -m app serve` in its own session, on a free port of 127.0.0.1."""

    def ready(self) -> bool:
        """True when /readyz answers 200 on ten new connections in a row.

        Each new connection may reach either worker, so one answer says nothing of the other.
        """
        return all(get(self.url("/readyz"))[0] == 200 for _ in range(10))


def with_group(pid: int, signum: int) -> None:
    """Send `signum` to the process group led by `pid`, if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def limit_open_files(limit: int) -> Callable[[], None]:
    """A preexec_fn that sets both open-file limits to `limit`, so the server cannot raise it."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def timed_get(url: str, timeout: float = 5.0) -> tuple[int, float]:
    """Status of a GET and the seconds it took."""
    began = time.monotonic()
    status, _ = get(url, timeout)
    return status, time.monotonic() - began


def probe(server: Server, paths: list[str], seconds: float) -> list[tuple[str, int, float]]:
    """GET each path in turn for `seconds`: (path, status, seconds taken) for every request."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in paths:
            seen.append((path, *timed_get(server.url(path))))
        time.sleep(0.1)
    return seen


class SlowBodies(threading.Thread):
    """`count` connections that each send a POST's headers, then one byte of the body every half
    second; a dropped one is replaced, up to `budget` connections in all, until stopped."""

    def __init__(self, port: int, count: int, budget: int) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.budget = port, count, budget
        self.opened = 0
        self.stopped = threading.Event()
        self.head = (
            b"POST /api/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )

    def run(self) -> None:
        """Keep `count` slow bodies going until stopped or the budget is spent."""
        open_: dict[socket.socket, bool] = {}  # socket -> its headers went out
        while not self.stopped.is_set():
            while len(open_) < self.count and self.opened < self.budget:
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", self.port))
                open_[sock] = False
                self.opened += 1
            for sock, started in list(open_.items()):
                try:
                    if sock.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    del open_[sock]
                    continue
                with contextlib.suppress(BlockingIOError, OSError):
                    sock.send(b"[" if started else self.head)
                    open_[sock] = True
            self.stopped.wait(0.5)
        for sock in open_:
            sock.close()


def pipelining_readers(port: int, count: int, requests: int, path: str) -> list[socket.socket]:
    """`count` connections that each send `requests` pipelined GETs of `path` and never read."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        # A small receive window, so the server's answers pile up on its side, not in ours.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(request * requests)
        sockets.append(sock)
    return sockets


def enough_open_files(needed: int) -> None:
    """Raise this process's soft open-file limit to at least `needed`, or skip the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard < needed:
            pytest.fail(f"the hard open-file limit here is {hard}; the test needs {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture
def tiny_source(tmp_path: Path) -> Path:
    """The tiny release as a zip on disk."""
    path = tmp_path / "ml-tiny.zip"
    path.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    return path


Start = Callable[..., Server]
"""serve(source, workers=2, **environment) -> a started Server."""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Start]:
    """Start servers with extra environment; every one is stopped at the end."""
    started: list[Server] = []

    def start(
        source: Path, workers: int = 2, open_files: int | None = None, **environment: str
    ) -> Server:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        env = {
            **os.environ,
            "MOVIELENS_SOURCE": str(source),
            "DATA_DIR": str(tmp_path / "data"),
            "PORT": str(port),
            "WORKERS": str(workers),
            "LOG_LEVEL": "INFO",
            **environment,
        }
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if open_files is None else limit_open_files(open_files),
            )
        server = Server(process, port, log)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_a_second_crash_keeps_the_healthy_worker_serving(serve: Start, tiny_source: Path) -> None:
    server: Server = serve(tiny_source)
    assert wait_for(server.ready, 30), server.output()
    assert wait_for(lambda: len(server.workers()) == 2, 10)
    first = min(server.workers())
    os.kill(first, signal.SIGKILL)
    # Its replacement, killed within a second of starting: a crash at start.
    assert wait_for(lambda: len(server.workers() - {first}) == 2, 10), server.output()
    replacement = max(server.workers() - {first})
    os.kill(replacement, signal.SIGKILL)
    answered = 0
    for _ in range(20):
        answered += get(server.url("/healthz"))[0] == 200
        time.sleep(0.1)
    assert server.process.poll() is None, server.output()
    assert answered >= 15  # the healthy worker went on serving
    assert wait_for(lambda: len(server.workers()) == 2, 15), server.output()
    assert wait_for(server.ready, 15)
    assert "starting another in" in server.output()
    assert server.stop() == 0


def test_a_worker_that_cannot_start_stops_the_server_with_a_clear_line(
    serve, tiny_source: Path, tmp_path: Path
) -> None:
    # Workers are forked by multiprocessing's fork server; this site hook, run as the fork
    # server starts, makes every process it forks die at once.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = (
        "import os, sys\n"
        "if 'forkserver' in ' '.join(sys.orig_argv):\n"
        "    os.register_at_fork(after_in_child=lambda: os._exit(3))\n"
    )
    (hooks / "sitecustomize.py").write_text(hook)
    server: Server = serve(tiny_source, PYTHONPATH=str(hooks))
    assert server.process.wait(timeout=60) == 1
    assert "cannot start: it exited 5 times in a row" in server.output()


def test_killing_the_supervisor_takes_its_workers_with_it(serve: Start, tiny_source: Path) -> None:
    server: Server = serve(tiny_source)
    assert wait_for(server.ready, 30), server.output()
    workers = server.workers()
    assert len(workers) == 2
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=5)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 10)
    with socket.socket() as probe:  # nothing listens any more
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


def test_the_open_file_limit_is_raised_at_start(tiny_source: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.fail(f"the hard open-file limit here is {hard}; the test needs more than 256")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    env = {
        **os.environ,
        "MOVIELENS_SOURCE": str(tiny_source),
        "DATA_DIR": str(tiny_source.parent / "data"),
        "PORT": str(free_port()),
        "WORKERS": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=ROOT,
        env=env,
        preexec_fn=low_limit,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: len(workers_of(process.pid)) == 2, 20)
        time.sleep(1)  # the workers raise theirs as they start
        for pid in [process.pid, *workers_of(process.pid)]:
            limits = Path(f"/proc/{pid}/limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
            assert line.split()[3] == str(hard), line
    finally:
        with_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_a_retry_reaches_every_worker(serve: Start, tmp_path: Path) -> None:
    source = tmp_path / "later.zip"  # missing at start: every worker fails
    server: Server = serve(source, RETRY_BACKOFF="120")
    assert wait_for(lambda: b"failed" in get(server.url("/readyz"))[1], 30), server.output()
    source.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    assert post(server.url("/retry")) in (200, 303)
    assert wait_for(server.ready, 10)
    # Each new connection may reach either worker: all of them must be ready now.
    assert wait_for(lambda: all(server.ready() for _ in range(20)), 10), server.output()


def test_a_failed_build_is_tried_again_by_itself(serve: Start, tmp_path: Path) -> None:
    source = tmp_path / "later.zip"
    server: Server = serve(source, workers=1, RETRY_BACKOFF="0.5")
    assert wait_for(lambda: b"failed" in get(server.url("/readyz"))[1], 30), server.output()
    source.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    assert wait_for(server.ready, 15), server.output()
    assert "Trying the build again" in server.output()


def test_clients_never_see_server_paths(serve: Start, tmp_path: Path) -> None:
    source = tmp_path / "secret-folder" / "missing.zip"
    server: Server = serve(source, workers=1, RETRY_BACKOFF="120")
    assert wait_for(lambda: b"failed" in get(server.url("/readyz"))[1], 30), server.output()
    for path in ("/readyz", "/api/status", "/", "/?user_id=1", "/api/users/1/recommendations"):
        status, body = get(server.url(path))
        assert status in (200, 503), path
        assert b"secret-folder" not in body and str(tmp_path).encode() not in body, path
    assert "secret-folder" in server.output()  # the operator's log has the details


async def test_a_same_size_edit_of_the_ratings_is_undone(
    settings: Settings, tiny_source: Path
) -> None:
    settings = settings.replace(source=str(tiny_source))
    first = Service(settings)
    await first.engine.build()
    before = (await first.recommend(1, n=3, k=2)).value
    ratings = settings.data_dir / "ml-tiny" / "ml-tiny" / "ratings.csv"
    text = ratings.read_text()
    edited = text.replace("2,30,5.0", "2,30,1.0")
    assert edited != text and len(edited) == len(text)
    ratings.write_text(edited)
    second = Service(settings)
    await second.engine.build()
    assert second.ready
    assert (await second.recommend(1, n=3, k=2)).value == before
    assert ratings.read_text() == text


async def test_same_size_garbage_in_the_extracted_files_is_recovered(
    settings: Settings, tiny_source: Path
) -> None:
    settings = settings.replace(source=str(tiny_source))
    first = Engine(settings)
    await first.build()
    assert first.ready
    ratings = settings.data_dir / "ml-tiny" / "ml-tiny" / "ratings.csv"
    text = ratings.read_bytes()
    stat = ratings.stat()
    ratings.write_bytes(b"\xff" * len(text))
    os.utime(ratings, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its time kept
    for snapshot in (settings.data_dir / "snapshots").iterdir():
        snapshot.unlink()
    second = Engine(settings)
    await second.build()
    assert second.status.state is State.READY, second.status
    assert ratings.read_bytes() == text


async def test_leftovers_of_interrupted_work_are_removed(
    settings: Settings, tiny_source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.replace(source=str(tiny_source))
    data = settings.data_dir
    (data / ".ml-tiny.0123.tmp" / "ml-tiny").mkdir(parents=True)
    (data / ".ml-tiny.zip.4567.part").write_bytes(b"half a download")
    (data / "snapshots").mkdir(parents=True)
    (data / "snapshots" / ".ml-tiny.snapshot.89ab.part").write_bytes(b"half a snapshot")
    with caplog.at_level(logging.WARNING):
        engine = Engine(settings)
        await engine.build()
    assert engine.ready
    assert not list(data.glob(".*.tmp")) and not list(data.glob(".*.part"))
    assert not list((data / "snapshots").glob(".*.part"))
    assert "interrupted" in caplog.text


async def test_the_answer_cache_is_bounded_in_bytes(settings: Settings, tiny_source: Path) -> None:
    limit = 40_000
    service = Service(
        settings.replace(source=str(tiny_source), result_cache=4096, result_cache_bytes=limit)
    )
    await service.engine.build()
    for n in range(1, 6):
        for first in (10, 20, 30, 40, 50):
            await service.recommend_for_ratings([(first, 4.5), (60, 3.0)], n=n, k=2)
    info = service.cache_info()
    assert 0 < info.bytes <= limit and info.max_bytes == limit
    assert info.entries < 25  # some were let go to stay within the bytes


def test_a_repeated_line_is_logged_a_few_times_then_counted() -> None:
    limiter = RepeatLimiter(shown=3, window=60)
    records = [
        logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed: %s", ("x",), None)
        for _ in range(100)
    ]
    assert sum(limiter.filter(record) for record in records) == 3
    other = logging.LogRecord("app", logging.INFO, __file__, 1, "something else", (), None)
    assert limiter.filter(other)


def test_status_reports_the_cache(serve: Start, tiny_source: Path) -> None:
    server: Server = serve(tiny_source, workers=1)
    assert wait_for(server.ready, 30), server.output()
    get(server.url("/api/users/1/recommendations"))
    body = json.loads(get(server.url("/api/status"))[1])
    cache = body["answer_cache"]
    assert cache["entries"] >= 1 and 0 < cache["bytes"] <= cache["max_bytes"]


def test_slow_bodies_beyond_the_open_file_limit_leave_room_for_others(
    serve: Start, tiny_source: Path
) -> None:
    enough_open_files(2048)
    server: Server = serve(tiny_source, open_files=256)
    assert wait_for(server.ready, 30), server.output()
    paths = ["/healthz", "/api/users/1/recommendations?n=3&k=2"]
    assert all(status == 200 for _, status, _ in probe(server, paths, 0.5))
    attack = SlowBodies(server.port, count=600, budget=6000)
    attack.start()
    try:
        time.sleep(2)  # every worker is at its limit by now
        seen = probe(server, paths, 8)
    finally:
        attack.stopped.set()
        attack.join(10)
    failed = [entry for entry in seen if entry[1] != 200]
    slowest = max(seconds for _, _, seconds in seen)
    print(
        f"{len(seen)} probes, {len(failed)} failed, slowest {slowest:.2f} s, {attack.opened} opened"
    )
    assert attack.opened >= 600
    assert not failed, failed[:5]
    assert slowest < 2.0
    assert len(server.output()) < 50_000
    assert server.stop() == 0


def test_clients_that_never_read_are_dropped_and_shutdown_stays_quick(
    serve: Start, tiny_source: Path
) -> None:
    enough_open_files(1024)
    server: Server = serve(tiny_source)
    assert wait_for(server.ready, 30), server.output()
    # 52 KB each: 50 of them fill every buffer between the server and a client that never reads.
    stuck = pipelining_readers(server.port, 200, 50, "/static/vendor/htmx.min.js")
    try:
        seen = probe(server, ["/api/users/1/recommendations?n=3&k=2", "/healthz"], 4)
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=15)
        took = time.monotonic() - began
    finally:
        for sock in stuck:
            sock.close()
    slowest = max(seconds for _, _, seconds in seen)
    output = server.output()
    print(
        f"slowest request {slowest:.2f} s, exit {code} after {took:.1f} s, "
        f"{output.count(chr(10))} lines"
    )
    assert all(status == 200 for _, status, _ in seen)
    assert slowest < 2.0
    assert code == 0 and took < 6.0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.count("\n") < 100


def test_a_snapshot_is_replaced_never_changed_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.snapshot"
    snapshot_file.write(path, {"x": np.arange(1000, dtype=np.int32)}, {"v": 1})
    before = path.read_bytes()
    with path.open("rb") as old:
        snapshot_file.write(path, {"x": np.arange(2000, dtype=np.int32)}, {"v": 2})
        assert os.fstat(old.fileno()).st_ino != path.stat().st_ino
        assert old.read() == before  # a reader of the old file still sees it whole


def recommendations_until(server: Server, stop: threading.Event, seen: list[int]) -> None:
    """Ask for recommendations (each one computed: the server runs without an answer cache)."""
    n = 0
    while not stop.is_set():
        n += 1
        seen.append(get(server.url(f"/api/users/{n % 4 + 1}/recommendations?n=3&k=2"))[0])


def test_a_mapped_snapshot_truncated_or_removed_keeps_every_worker_serving(
    serve: Start, tiny_source: Path, tmp_path: Path
) -> None:
    server: Server = serve(tiny_source, RESULT_CACHE="0")
    assert wait_for(server.ready, 30), server.output()
    assert wait_for(lambda: len(server.workers()) == 2, 10)
    workers = server.workers()
    # Both workers serve from the snapshot once the background build is done.
    ask = server.url("/api/users/1/recommendations?n=3&k=2")
    assert wait_for(lambda: all(get(ask)[0] == 200 for _ in range(20)), 60)
    [path] = (tmp_path / "data" / "snapshots").glob("*.snapshot")
    stop = threading.Event()
    seen: list[int] = []
    clients = [
        threading.Thread(target=recommendations_until, args=(server, stop, seen)) for _ in range(4)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1)
        began = time.monotonic()
        os.truncate(path, 0)  # held back until the workers let go of it
        held = time.monotonic() - began
        time.sleep(1.5)
        path.unlink()
        time.sleep(1.5)
    finally:
        stop.set()
        for client in clients:
            client.join(10)
    failed = [status for status in seen if status != 200]
    print(f"{len(seen)} requests, {len(failed)} failed; truncate held back {held:.3f} s")
    assert len(seen) > 50 and not failed, (len(failed), server.output()[-2000:])
    assert server.workers() == workers, server.output()[-2000:]  # none died
    assert "Traceback" not in server.output()
