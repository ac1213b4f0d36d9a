"""`python -m app` / `movierec`: flags override the environment and are validated alike; SIGTERM
stops the server cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app.__main__ as cli
from app.config import Settings
from tests import live


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def serve(settings: Settings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(cli, "serve", serve)
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("WORKERS", "3")
    assert cli.main(["--host", "0.0.0.0", "--port", "8123"]) == 0
    assert (seen[0].host, seen[0].port, seen[0].workers) == ("0.0.0.0", 8123, 3)
    assert cli.main(["serve"]) == 0 and seen[1].port == 9100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "PORT='0' must be a port number"),
        (["serve", "--workers", "many"], "WORKERS='many' has an invalid value"),
    ],
)
def test_bad_flags_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOWNLOAD_RETRIES", "-1")
    with pytest.raises(SystemExit):
        cli.main([])
    assert "DOWNLOAD_RETRIES='-1'" in capsys.readouterr().err


def serve_once(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m app serve` in a subprocess that is expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env=environ,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_unknown_algorithm_is_a_usage_error(tmp_path: Path) -> None:
    environ = {**os.environ, "ALGORITHMS": "nope", "DATA_DIR": str(tmp_path)}
    done = serve_once(environ)
    assert done.returncode == 2, done.stderr
    assert "ALGORITHMS must list known algorithms" in done.stderr
    assert "unknown: nope" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_exits_cleanly_on_sigterm(tiny_zip: Path, tmp_path: Path, workers: int) -> None:
    server = live.start(tiny_zip, tmp_path, WORKERS=str(workers))
    try:
        server.wait_ready(timeout=30)
        if workers > 1:  # one worker serves in the supervisor's own process
            assert len(server.workers()) == workers
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=12) == 0
    finally:
        server.stop()
    output = server.output()
    assert "SIGTERM received" in output and "Traceback" not in output, output


def test_workers_each_listen_and_a_busy_port_is_refused(tmp_path: Path) -> None:
    from app.serve.sockets import listening_socket

    first = listening_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    first.listen()
    second = listening_socket("127.0.0.1", port)  # SO_REUSEPORT: the kernel balances them
    second.close()
    first.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        environ = {
            **os.environ,
            "PORT": str(taken.getsockname()[1]),
            "HOST": "127.0.0.1",
            "WORKERS": "2",
            "DATA_DIR": str(tmp_path),
        }
        done = serve_once(environ)
    assert done.returncode == 1
    assert "Cannot listen on 127.0.0.1" in done.stderr and "Traceback" not in done.stderr


def test_the_serve_command_imports_neither_the_engine_nor_the_web_app() -> None:
    # The supervisor only starts workers; its fork server imports the app once for all of
    # them. Importing the engine here too cost about 0.8 s before the first worker listened.
    code = (
        "import sys, app.__main__\n"
        "print(sorted(m for m in ('app.engine', 'app.web', 'quart', 'sqlalchemy', 'pandas')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
