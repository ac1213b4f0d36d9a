"""app.serve: the hook point the connection guard relies on is checked at start, and every
package the app imports is declared."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import h11
import hypercorn.asyncio.run as hypercorn_run
import pytest
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.h11 import H11Protocol

from app.serve import HookMismatch, check_hook_point
from app.serve.connections import GuardedConnection, guard_connections

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_hypercorn_is_what_the_guard_expects() -> None:
    check_hook_point()  # raises HookMismatch otherwise


def test_installing_the_guard_replaces_the_class_each_connection_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hypercorn_run, "TCPServer", hypercorn_run.TCPServer)  # undone after
    guard_connections(64)
    assert hypercorn_run.TCPServer is GuardedConnection
    assert GuardedConnection.cap == 64
    check_hook_point()  # the guard in place is still a TCPServer


@pytest.mark.parametrize(
    ("target", "name", "reason"),
    [
        (hypercorn_run, "TCPServer", "hypercorn.asyncio.run has no TCPServer class to replace"),
        (h11.Connection, "their_state", "a connection is built differently"),
        (TCPServer, "_read_data", "TCPServer._read_data is not a coroutine method"),
        (H11Protocol, "_send_error_response", "no longer sends through _send_h11_event"),
    ],
)
def test_a_moved_hook_point_stops_with_the_tested_versions(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, reason: str
) -> None:
    monkeypatch.delattr(target, name)
    with pytest.raises(HookMismatch) as info:
        check_hook_point()
    message = str(info.value)
    assert reason in message
    assert "It is tested with Hypercorn 0.18 with h11 0.16" in message


def test_serve_refuses_to_start_on_a_hypercorn_it_cannot_hook(tmp_path: Path) -> None:
    # A site hook, run before the app is imported, takes away the name the guard replaces.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import hypercorn.asyncio.run\ndel hypercorn.asyncio.run.TCPServer\n"
    )
    environ = {**os.environ, "PYTHONPATH": str(hooks), "DATA_DIR": str(tmp_path), "PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Cannot start: the connection guard cannot hook into Hypercorn" in done.stderr
    assert "tested with Hypercorn 0.18 with h11 0.16" in done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_workers_get_the_settings_the_supervisor_parsed(tiny_zip: Path, tmp_path: Path) -> None:
    # The environment says one port, the flag another: forked workers read no environment,
    # so they listen where the command line said.
    from_env, from_flag = _free_port(), _free_port()
    environ = {
        **os.environ,
        "MOVIELENS_SOURCE": str(tiny_zip),
        "DATA_DIR": str(tmp_path / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(from_env),
    }
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(from_flag), "--workers", "2"],
            env=environ,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _ready(from_flag):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", from_env)) != 0
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _imported_packages() -> set[str]:
    """Top-level names of every absolute import in app/, inside functions too."""
    names: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - {"app", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_app_imports_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        _normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        for requirement in project["dependencies"]
    }
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for name in sorted(_imported_packages() - set(sys.stdlib_module_names)):
        providers = {_normalise(d) for d in distributions.get(name, [name])}
        if not providers & declared:
            undeclared[name] = sorted(providers)
    assert not undeclared, f"imported by app/ but not declared in pyproject.toml: {undeclared}"
    assert {"starlette", "h11", "werkzeug", "jinja2"} <= declared
