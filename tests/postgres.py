"""A real PostgreSQL for the tests: Debian's server, started in a temporary folder.

    def test_x(postgres: Postgres) -> None:
        url = postgres.new_database()      # a fresh, empty database on it

The server runs under its own non-root user (the `postgres` account Debian's package makes;
PostgreSQL refuses to run as root) with its data and socket in a temporary folder, listening
on a free port of 127.0.0.1 only, and trusting connections from there. It is started once per
test session and stopped at the end. Without Debian's PostgreSQL the tests that need it are
skipped with the reason, except in CI, where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import free_port

IN_CI = os.environ.get("CI") == "true"
SERVER_USER = "postgres"
SUPERUSER = "movierec"


def server_binaries() -> Path | None:
    """The newest of Debian's PostgreSQL bin folders, or None when it is not installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parts[4]) if Path(path).parts[4].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class Postgres:
    """One PostgreSQL server in a temporary folder: start, stop, restart, fresh databases."""

    def __init__(self, binaries: Path, folder: Path) -> None:
        self.binaries = binaries
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = free_port()
        # Root cannot run PostgreSQL; anyone else runs it as themselves.
        self.user = SERVER_USER if os.geteuid() == 0 else None

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binaries / command[0]), *command[1:]],
            user=self.user,
            cwd=self.folder,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def initialise(self) -> None:
        """Make the cluster: a superuser with no password, trusted on 127.0.0.1 only."""
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` closes the sessions; `immediate` is a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop and start again, closing every connection the clients had."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        """The URL of one database on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = "test_" + uuid.uuid4().hex[:12]
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the whole session; skipped (failed in CI) when not installed."""
    binaries = server_binaries()
    if binaries is None:
        message = "Debian's PostgreSQL (apt-get install postgresql) is not installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    server = Postgres(binaries, folder)
    try:
        server.initialise()
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database, once on SQLite (a file in tmp_path) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nights.sqlite3'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database()
