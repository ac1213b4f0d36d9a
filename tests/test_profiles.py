"""Saved profiles, the domain: tokens, size, updates, forgetting and expiry.

Every test runs on SQLite and on a real PostgreSQL (`database_url`, tests/postgres.py). Films
are checked against the tiny release (films 10-60) by a real Service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from app.config import Settings
from app.engine import InvalidRatings, Service
from app.engine.profiles import MAX_RATINGS, ProfileChanged, ProfileNotFound, Profiles
from app.store import Database
from app.store.schema import profile_ratings, profiles

START = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(settings: Settings, tiny_zip: Path) -> AsyncIterator[Service]:
    """A Service serving the tiny release, to check films against."""
    service = Service(settings.replace(source=str(tiny_zip)))
    service.start()
    await service.loaded(60)
    yield service
    await service.stop()


@pytest.fixture
async def kept(
    settings: Settings, database_url: str, service: Service
) -> AsyncIterator[tuple[Profiles, Clock]]:
    """Profiles on a fresh database, living 180 days, with the clock they see."""
    database = Database(database_url)
    await database.start()
    clock = Clock()
    yield Profiles(settings.replace(profile_ttl=180 * 86400.0), database, service, clock), clock
    await database.stop()


async def test_a_profile_keeps_its_ratings_behind_a_random_url_safe_token(
    kept: tuple[Profiles, Clock],
) -> None:
    profiles_, _ = kept
    token = await profiles_.create([(20, 4.5), (10, 3.0)])
    other = await profiles_.create([])
    assert len(token) == 22 and set(token) <= URL_SAFE and token != other
    assert await profiles_.get(token) == ((10, 3.0), (20, 4.5))
    assert await profiles_.get(other) == ()


async def test_the_token_is_stored_only_as_its_hash(kept: tuple[Profiles, Clock]) -> None:
    profiles_, _ = kept
    token = await profiles_.create([(10, 4.0)])
    async with profiles_.database.transaction() as connection:
        row = (await connection.execute(profiles.select())).one()
    assert token not in tuple(str(value) for value in row)
    assert len(row.token_sha256) == 64


async def test_update_replaces_the_ratings(kept: tuple[Profiles, Clock]) -> None:
    profiles_, _ = kept
    token = await profiles_.create([(10, 4.0), (20, 2.0)])
    await profiles_.update(token, [(30, 5.0)])
    assert await profiles_.get(token) == ((30, 5.0),)


async def test_an_update_made_from_ratings_no_longer_stored_is_refused(
    kept: tuple[Profiles, Clock],
) -> None:
    profiles_, _ = kept
    token = await profiles_.create([(10, 4.0)])
    seen = await profiles_.get(token)
    await profiles_.update(token, [(10, 4.0), (20, 3.0)], expected=seen)  # the first tab
    with pytest.raises(ProfileChanged):  # the second tab, made from what it saw before
        await profiles_.update(token, [(10, 4.0), (30, 5.0)], expected=seen)
    assert await profiles_.get(token) == ((10, 4.0), (20, 3.0))
    now = await profiles_.get(token)
    await profiles_.update(token, [*now, (30, 5.0)], expected=now)
    assert await profiles_.get(token) == ((10, 4.0), (20, 3.0), (30, 5.0))


async def test_bad_ratings_and_unknown_tokens_are_refused(kept: tuple[Profiles, Clock]) -> None:
    profiles_, _ = kept
    with pytest.raises(InvalidRatings):
        await profiles_.create([(999_999, 4.0)])
    with pytest.raises(InvalidRatings, match=str(MAX_RATINGS)):
        await profiles_.create([(10, 4.0)] * (MAX_RATINGS + 1))
    with pytest.raises(ProfileNotFound):
        await profiles_.get("A" * 22)
    with pytest.raises(ProfileNotFound):
        await profiles_.update("A" * 22, [(10, 4.0)])


async def test_forget_deletes_the_profile_and_its_ratings_at_once(
    kept: tuple[Profiles, Clock],
) -> None:
    profiles_, _ = kept
    token = await profiles_.create([(10, 4.0), (20, 2.0)])
    await profiles_.forget(token)
    with pytest.raises(ProfileNotFound):
        await profiles_.get(token)
    with pytest.raises(ProfileNotFound):
        await profiles_.forget(token)
    async with profiles_.database.transaction() as connection:
        count = select(func.count()).select_from(profile_ratings)
        left = (await connection.execute(count)).scalar()
    assert left == 0


async def test_a_profile_lives_profile_ttl_past_its_last_use(kept: tuple[Profiles, Clock]) -> None:
    profiles_, clock = kept
    used = await profiles_.create([(10, 4.0)])
    idle = await profiles_.create([(20, 4.0)])
    clock.now += timedelta(days=100)
    await profiles_.get(used)  # Opening it counts as use.
    clock.now += timedelta(days=100)
    with pytest.raises(ProfileNotFound):
        await profiles_.get(idle)
    assert await profiles_.expire() == 1
    assert await profiles_.get(used) == ((10, 4.0),)


def test_the_migration_follows_the_nights() -> None:
    scripts = ScriptDirectory(str(Path("app/store/migrations")))
    revision = scripts.get_revision("0002_profiles")
    assert revision is not None and revision.down_revision == "0001_nights"
    assert scripts.get_current_head() == "0002_profiles"


async def test_once_started_unused_profiles_are_swept_away(
    settings: Settings, database_url: str, service: Service
) -> None:
    database = Database(database_url)
    await database.start()
    clock = Clock()
    # A one-second PROFILE_TTL: a sweep every tenth of it.
    kept = Profiles(settings.replace(profile_ttl=1.0), database, service, clock)
    await kept.create([(10, 4.0)])
    clock.now += timedelta(seconds=2)
    kept.start()
    try:
        for _ in range(100):  # Polled: the sweep runs on its own schedule.
            async with database.transaction() as connection:
                left = (
                    await connection.execute(select(func.count()).select_from(profiles))
                ).scalar()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0
    finally:
        await kept.stop()
        await database.stop()
