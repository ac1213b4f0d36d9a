"""Bring the schema to the newest revision, once, however many workers and replicas start.

The revisions are Alembic scripts in app/store/migrations/versions. Whoever starts first
migrates while the others wait: on PostgreSQL behind a transaction-scoped advisory lock (so
a crashed migrator releases it with its connection), on SQLite behind the file lock of
app.data.lock beside the database file. Each then finds the schema at the newest revision
and has nothing to do. On both engines the migration runs in one transaction, so a failure
leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.data.lock import held_async

log = logging.getLogger(__name__)
# Alembic says "Context impl SQLiteImpl." and more at INFO in every worker at every start;
# _upgrade() logs the one line that matters, when a migration ran.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number, the same in every replica: "movienight" in ASCII, as an integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"mvnight\x00", "big")


# Alembic keeps the migration being run in module globals (`alembic.op`, `alembic.context`):
# two databases migrating at once in one process would mix their statements up.
_MIGRATING = threading.Lock()


@contextlib.asynccontextmanager
async def _one_at_a_time() -> AsyncIterator[None]:
    """Hold this process's migration turn, waiting on the event loop (never blocking it)."""
    while not _MIGRATING.acquire(blocking=False):
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        _MIGRATING.release()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for app/store/migrations, using `connection` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None
    return found


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty one)."""
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    before = current_revision(connection)
    command.upgrade(alembic_config(connection), "head")
    after = current_revision(connection)
    if after != before:
        log.info("Migrated the nights database from %s to %s", before or "empty", after)


def _lock_file(sqlite_path: Path) -> Path:
    return sqlite_path.with_name(f".{sqlite_path.name}.lock")


def _create_sqlite_file(path: Path) -> None:
    """Make the SQLite file if it is missing, in WAL mode (kept in the file once set).

    WAL lets readers go on while one worker writes, which is how several workers share it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(f"file:{path}?mode=rwc", uri=True, timeout=5)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not switch to WAL mode (it is {mode})")
    finally:
        connection.close()


async def upgrade(engine: AsyncEngine, sqlite_path: Path | None) -> None:
    """Migrate to the newest revision under the lock that keeps other starters waiting."""
    if sqlite_path is None:
        async with _one_at_a_time(), engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            await connection.run_sync(_upgrade)
        return

    def waiting() -> None:
        log.info("Waiting for another worker to migrate the nights database")

    async with held_async(_lock_file(sqlite_path), waiting):
        await asyncio.to_thread(_create_sqlite_file, sqlite_path)
        async with _one_at_a_time(), engine.begin() as connection:
            await connection.run_sync(_upgrade)
