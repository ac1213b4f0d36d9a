"""`movierec serve` and `movierec build` as real processes on 127.0.0.1: the one place tests
start them, wait for readiness and stop them.

    with serving(source, tmp_path, WORKERS="2") as server:
        server.wait_ready()
        assert get(server.url("/api/status")).status == 200

Waits poll an observable condition with a deadline and fail when it passes (`until`), rather
than sleep for a fixed time.
"""

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


def post(url: str, timeout: float = 5.0) -> int:
    """Status of an empty POST."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


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
    """Poll `condition()` until it is true or `timeout` seconds pass; whether it became true.

    Use it as `assert wait_for(...)`, or `until` which fails by itself.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def until(
    condition: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str] = "",
    step: float = 0.1,
) -> float:
    """Poll `condition()` until it is true; seconds it took. Fails when `timeout` passes.

    `what` (or what it returns, evaluated only on failure, such as a server's output) is the
    failure's message.
    """
    began = time.monotonic()
    if wait_for(condition, timeout, step):
        return time.monotonic() - began
    detail = what() if callable(what) else what
    raise AssertionError(f"not within {timeout} s: {detail}")


# New connections in a row that must find /readyz at 200 before a server counts as ready: each
# may reach any worker, so one answer says nothing of the others.
READY_CONNECTIONS = 10


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

    def ready(self) -> bool:
        """True when /readyz answers 200 on READY_CONNECTIONS new connections in a row."""
        return all(get(self.url("/readyz")).status == 200 for _ in range(READY_CONNECTIONS))

    def fitted(self) -> bool:
        """True when /api/algorithms lists no algorithm still being prepared, on
        READY_CONNECTIONS new connections in a row (those ALGORITHMS leaves out stay out)."""
        for _ in range(READY_CONNECTIONS):
            status, body = get_json(self.url("/api/algorithms"))
            listed = body.get("algorithms", []) if status == 200 else []
            if not listed or any(a["availability"] == "preparing" for a in listed):
                return False
        return True

    def wait_ready(self, timeout: float = 60, fitted: bool = False) -> float:
        """Wait until `ready()` (and `fitted()` if asked); seconds it took. Fails with the
        output if the server exits or is not ready within `timeout`."""

        def ready_or_exited() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited {self.process.returncode} before it was ready:\n"
                    + self.output()[-3000:]
                )
            return self.ready() and (not fitted or self.fitted())

        return until(ready_or_exited, timeout, lambda: self.output()[-3000:])

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


def environment_for(source: Path | str, folder: Path, **environment: str) -> dict[str, str]:
    """The environment of a `movierec` command on `source` with DATA_DIR in `folder`/data.

    Only the original algorithm unless ALGORITHMS says otherwise: the quickest to fit, and
    the one the hand-worked answers are for.
    """
    return {
        **os.environ,
        "MOVIELENS_SOURCE": str(source),
        "DATA_DIR": str(folder / "data"),
        "ALGORITHMS": "original",
        "LOG_LEVEL": "INFO",
        **environment,
    }


def start(
    source: Path | str,
    folder: Path,
    *,
    preexec_fn: Callable[[], object] | None = None,
    **environment: str,
) -> Server:
    """Start `movierec serve` of `source` on a free port of 127.0.0.1, DATA_DIR in `folder`.

    Not waited for (see `Server.wait_ready`); the caller stops it (or use `serving`).
    `preexec_fn` runs in the child before the server starts, such as to lower a limit.
    """
    return _launch(source, folder, environment, preexec_fn)


@contextlib.contextmanager
def serving(source: Path | str, folder: Path, **environment: str) -> Iterator[Server]:
    """A server of `source` with DATA_DIR in `folder` and extra environment; stopped after."""
    server = _launch(source, folder, environment, None)
    try:
        yield server
    finally:
        server.stop()


def build(
    source: Path | str, folder: Path, timeout: float = 300, **environment: str
) -> subprocess.CompletedProcess[str]:
    """Run `movierec build` of `source` into `folder`/data to the end; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "app", "build"],
        cwd=ROOT,
        env=environment_for(source, folder, **environment),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _launch(
    source: Path | str,
    folder: Path,
    environment: dict[str, str],
    preexec_fn: Callable[[], object] | None,
) -> Server:
    port = free_port()
    log = folder / f"server-{port}.log"
    env = environment_for(source, folder, PORT=str(port), **environment)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    return Server(process, port, log)


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
