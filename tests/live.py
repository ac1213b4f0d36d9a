"""`movierec serve` as a real process on 127.0.0.1, for tests that need real workers and ports."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def workers_of(supervisor: int) -> set[int]:
    """The live worker processes of `supervisor` (Linux): the children of its fork server.

    Not multiprocessing's resource tracker, the supervisor's other child.
    """
    children: dict[int, list[tuple[int, bytes]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append((int(entry.name), command))
    servers = [pid for pid, command in children.get(supervisor, []) if b"forkserver" in command]
    return {pid for server in servers for pid, _ in children.get(server, [])}


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> tuple[int, Any]:
    """Status and JSON body of a GET (status 0 when nothing answered, {} on an error status)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, {}
    except OSError:
        return 0, {}


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a GET got: status, headers (names in lower case) and body (status 0: no answer)."""

    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 3.0) -> Answer:
    """GET `url` on a new connection."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Answer(answer.status, _lower(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, _lower(error.headers.items()), error.read())
    except OSError:
        return Answer(0, {}, b"")


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    """Poll `condition()` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@dataclasses.dataclass
class Server:
    """`python -m app serve` in its own session; stopped by `stop()`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        """Absolute URL of `path` on the public port."""
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        """Everything the server wrote so far."""
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        """The worker processes (Linux), forked by the supervisor's fork server."""
        return workers_of(self.process.pid)

    def stop(self) -> int | None:
        """SIGTERM the group, SIGKILL what is left after 15 s; the supervisor's exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        return self.process.returncode


@contextlib.contextmanager
def serving(source: Path, folder: Path, **environment: str) -> Iterator[Server]:
    """A server of `source` with DATA_DIR in `folder` and extra environment; stopped after."""
    port = free_port()
    log = folder / f"server-{port}.log"
    env = {
        **os.environ,
        "MOVIELENS_SOURCE": str(source),
        "DATA_DIR": str(folder / "data"),
        "PORT": str(port),
        "ALGORITHMS": "original",
        "LOG_LEVEL": "INFO",
        **environment,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        yield server
    finally:
        server.stop()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
