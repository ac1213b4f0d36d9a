"""The one place that opens the database: SQLite (the default, in DATA_DIR) or PostgreSQL.

`Database.start()` connects and brings the schema up to date (app/store/migrate.py), and
`transaction()` hands out one connection inside one transaction. Failures to reach or write
the database become `DatabaseUnavailable`, with a text for the log and one for clients; a
transaction is never retried behind the caller's back, since only the caller knows whether
its work may run twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import Settings
from app.store import migrate

log = logging.getLogger(__name__)

SQLITE_FILE = "movienight.sqlite3"
"""The default database: this file in DATA_DIR."""
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection (SQLite: for another writer's lock) before giving up."""
STATEMENT_TIMEOUT = 10.0
"""Seconds a PostgreSQL statement may take before the request is answered 503."""
READING = "movienight_reading"
"""The execution option that marks a transaction as reading only."""
UNAVAILABLE = "The movie night database is unavailable right now; please try again in a moment."


class DatabaseUnavailable(Exception):
    """The database cannot be reached or written: `str()` for the log, `public` for clients."""

    def __init__(self, message: str, *, public: str = UNAVAILABLE) -> None:
        super().__init__(message)
        self.public = public


def _async_url(url: URL) -> URL:
    """The URL with the async driver of its database (aiosqlite or asyncpg)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}")


def _is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used now, rather than a mistake in a query."""
    if isinstance(exc, IntegrityError | ProgrammingError | DataError):
        return False
    # OperationalError, InterfaceError and the rest: lost connections, a server shutting down,
    # a read-only or locked SQLite file, a missing table in a file that was replaced.
    # sqlite3's own errors come from making the file at start, before SQLAlchemy is involved.
    return isinstance(exc, DBAPIError | OSError | TimeoutError | sqlite3.Error)


class Database:
    """A connection pool to the nights database and its migrations; start() before use."""

    def __init__(self, url: str | URL) -> None:
        self.url = _async_url(make_url(url))
        self._engine: AsyncEngine | None = None
        self._inode: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database DATABASE_URL names, else the SQLite file in DATA_DIR."""
        if settings.database_url:
            return cls(settings.database_url)
        path = (settings.data_dir / SQLITE_FILE).absolute()
        return cls(URL.create("sqlite", database=str(path)))

    @property
    def url_for_logs(self) -> str:
        """The URL without its password."""
        return self.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.url.get_backend_name()

    @property
    def started(self) -> bool:
        """Whether start() has connected and migrated (and stop() not yet closed it)."""
        return self._engine is not None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL."""
        return Path(self.url.database or "") if self.dialect == "sqlite" else None

    async def start(self) -> None:
        """Connect and bring the schema up to date; DatabaseUnavailable if it cannot."""
        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            await migrate.upgrade(engine, self.sqlite_path)
            self._inode = self._current_inode()
            # Connections are opened again when there is work; none is left idle meanwhile.
            await engine.dispose()
        except Exception as exc:
            await engine.dispose()
            if isinstance(exc, DatabaseUnavailable):
                raise
            if isinstance(exc, ArgumentError) or not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc
        self._engine = engine
        log.info("Movie nights are kept in %s", self.url_for_logs)

    async def stop(self) -> None:
        """Close every connection."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self, *, reading: bool = False) -> AsyncIterator[AsyncConnection]:
        """One connection in one transaction: committed on success, rolled back on any error.

        `reading`: the transaction only reads, so on SQLite it does not take the write lock
        (readers then go on beside a writer, as WAL allows). DatabaseUnavailable if the
        database cannot be reached or written; other errors pass through after the rollback.
        """
        engine = self._engine
        if engine is None:
            raise DatabaseUnavailable("The database is not started (or failed to start).")
        await self._check_sqlite_file(engine)
        try:
            async with engine.connect() as connection:
                if reading:
                    await connection.execution_options(**{READING: True})
                async with connection.begin():
                    yield connection
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if not _is_unavailable(exc):
                raise
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = reason[0] if reason else type(exc).__name__
        return DatabaseUnavailable(f"The database {self.url_for_logs} is unavailable: {first}")

    def _create_engine(self) -> AsyncEngine:
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            # mode=rw: a connection never makes a new empty file where the database was;
            # start() makes it, once, under the migration lock.
            url = self.url.set(database=f"file:{self.sqlite_path}").update_query_dict(
                {"mode": "rw", "uri": "true"}
            )
            options["connect_args"] = {"timeout": CONNECT_TIMEOUT}
            engine = create_async_engine(url, **options)
            _begin_immediately(engine)
            return engine
        options["connect_args"] = {"timeout": CONNECT_TIMEOUT, "command_timeout": STATEMENT_TIMEOUT}
        options.update(pool_size=5, max_overflow=5, pool_timeout=CONNECT_TIMEOUT)
        return create_async_engine(self.url, **options)

    def _current_inode(self) -> int | None:
        path = self.sqlite_path
        if path is None:
            return None
        try:
            return os.stat(path).st_ino
        except OSError:
            return None

    async def _check_sqlite_file(self, engine: AsyncEngine) -> None:
        """DatabaseUnavailable when the SQLite file went or was replaced since start().

        Open connections would go on writing to the removed file, and every change would be
        lost with it; a stat per transaction (microseconds) tells.
        """
        if self._inode is None or self._current_inode() == self._inode:
            return
        # Connections to the old file must not be handed out again.
        await engine.dispose()
        raise DatabaseUnavailable(
            f"The database file {self.sqlite_path} was removed or replaced while in use.",
        )


def _begin_immediately(engine: AsyncEngine) -> None:
    """SQLite: every transaction that may write takes the write lock at BEGIN; foreign keys on.

    Python's sqlite3 begins transactions late and deferred: two writers that both read first
    then deadlock on upgrading their locks, and one fails at once with "database is locked".
    BEGIN IMMEDIATE makes the second wait (up to CONNECT_TIMEOUT) for the first instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        reading = connection.get_execution_options().get(READING, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if reading else "BEGIN IMMEDIATE")
