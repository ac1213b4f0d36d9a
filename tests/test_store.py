"""The database: where it is, its migrations (also when many start at once), its failures.

Every test runs on SQLite and on a real PostgreSQL (tests/postgres.py), never a mock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from app.config import Settings
from app.store import Database, DatabaseUnavailable, metadata
from app.store import nights as stored
from app.store.migrate import head
from app.store.schema import nights
from tests.live import free_port

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


async def started(url: str) -> Database:
    """A started Database at `url`."""
    database = Database(url)
    await database.start()
    return database


async def test_many_starting_at_once_migrate_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(6)]
    await asyncio.gather(*(database.start() for database in databases))
    try:
        async with databases[0].transaction() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert version.scalars().all() == [head()]
        assert set(metadata.tables) <= tables
    finally:
        await asyncio.gather(*(database.stop() for database in databases))


async def test_a_second_start_finds_the_schema_at_the_newest_revision(database_url: str) -> None:
    first = await started(database_url)
    async with first.transaction() as connection:
        await stored.insert_night(connection, "kept", NOW, NOW + timedelta(hours=1))
    await first.stop()
    second = await started(database_url)
    try:
        async with second.transaction() as connection:
            found = await connection.execute(select(nights.c.id))
        assert found.scalars().all() == ["kept"]
    finally:
        await second.stop()


async def test_a_failed_transaction_leaves_nothing_behind(database_url: str) -> None:
    database = await started(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as connection:
                await stored.insert_night(connection, "half", NOW, NOW + timedelta(hours=1))
                raise RuntimeError("the rest of the change failed")
        async with database.transaction() as connection:
            assert await stored.version(connection, "half", NOW) is None
    finally:
        await database.stop()


async def test_times_come_back_in_utc(database_url: str) -> None:
    database = await started(database_url)
    later = NOW.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")) + timedelta(hours=2)
    try:
        async with database.transaction() as connection:
            await stored.insert_night(connection, "n", NOW, later)
            found = await stored.load(connection, "n", NOW)
        assert found is not None
        assert found.created_at == NOW and found.created_at.tzinfo == UTC
        assert found.expires_at == later
    finally:
        await database.stop()


def test_the_default_is_a_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    database = Database.from_settings(Settings(data_dir=tmp_path / "data"))
    assert database.dialect == "sqlite"
    assert database.sqlite_path == (tmp_path / "data" / "movienight.sqlite3").absolute()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database.from_settings(Settings(data_dir=tmp_path / "data"))
    await database.start()
    await database.stop()
    with sqlite3.connect(tmp_path / "data" / "movienight.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("given", "dialect"),
    [
        ("postgresql://night:s3cret@db.example:5432/nights", "postgresql"),
        ("postgres://night:s3cret@db.example/nights", "postgresql"),
        ("sqlite:////var/lib/movienight/nights.sqlite3", "sqlite"),
    ],
)
def test_urls_choose_the_async_driver_and_logs_never_show_the_password(
    given: str, dialect: str
) -> None:
    database = Database.from_settings(Settings(database_url=given))
    assert database.dialect == dialect
    assert "s3cret" not in database.url_for_logs
    assert database.url.drivername in ("postgresql+asyncpg", "sqlite+aiosqlite")


async def test_an_unreachable_server_is_unavailable_without_its_password() -> None:
    database = Database(f"postgresql://night:s3cret@127.0.0.1:{free_port()}/nights")
    with pytest.raises(DatabaseUnavailable) as raised:
        await database.start()
    assert "s3cret" not in str(raised.value)
    assert "127.0.0.1" not in raised.value.public
    assert not database.started


async def test_a_database_folder_that_cannot_be_made_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    database = Database(f"sqlite:///{blocker / 'nights.sqlite3'}")
    with pytest.raises(DatabaseUnavailable):
        await database.start()


async def test_before_start_a_transaction_is_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nights.sqlite3'}")
    with pytest.raises(DatabaseUnavailable):
        async with database.transaction():
            pass


async def test_a_removed_sqlite_file_is_unavailable_not_written_into_the_void(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nights.sqlite3"
    database = await started(f"sqlite:///{path}")
    try:
        async with database.transaction() as connection:
            await stored.insert_night(connection, "n", NOW, NOW + timedelta(hours=1))
        for leftover in tmp_path.glob("nights.sqlite3*"):
            leftover.unlink()
        with pytest.raises(DatabaseUnavailable):
            async with database.transaction() as connection:
                await stored.touch(connection, "n", NOW, NOW + timedelta(hours=2))
        assert not path.exists()
    finally:
        await database.stop()
