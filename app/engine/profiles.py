"""Saved profiles: a person's ratings kept in the database behind a private link (/me/<token>).

A profile holds up to MAX_RATINGS ratings (the API's own limit), too many for an address. Its
token is 128 random bits from `secrets`, URL-safe; only its SHA-256 is stored, so the database
alone cannot open a profile. A profile lives PROFILE_TTL past its last use (read or change);
`expire()`, run every hour once started, deletes the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.engine.night_rules import digest, new_secret
from app.engine.queries import MAX_RATINGS, InvalidRatings, Ratings
from app.store import Database, DatabaseUnavailable
from app.store import profiles as stored

log = logging.getLogger(__name__)

__all__ = ["MAX_RATINGS", "InvalidRatings", "ProfileChanged", "ProfileNotFound", "Profiles"]


class ProfileNotFound(LookupError):
    """No profile has this token: it never existed, was forgotten, or expired."""

    public = "There is no saved profile at this link: it was forgotten or has expired."

    def __init__(self) -> None:
        super().__init__(self.public)


class ProfileChanged(RuntimeError):
    """The ratings stored are no longer those a change was made from: another change came
    first. Read them again and make the change anew."""


class RatingsChecker(Protocol):
    """What checks ratings against the catalogue (the Service)."""

    async def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        """The ratings checked; InvalidRatings for an unknown film or a bad rating."""
        ...


START_WAIT = 5.0
"""Seconds a call waits for the database's first start (the nights start it) before failing."""
START_POLL = 0.05
EXPIRE_EVERY = 3600.0
"""Seconds between sweeps for profiles unused for PROFILE_TTL."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Profiles:
    """Saved profiles kept in the database: create, get, update, forget, expire."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        checker: RatingsChecker,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.database = database
        self._checker = checker
        self._clock = clock
        self._ttl = timedelta(seconds=settings.profile_ttl)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sweep unused profiles every EXPIRE_EVERY seconds. Call on the event loop at start-up."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        """Stop the sweeps (the nights close the shared database)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def create(self, ratings: Sequence[tuple[int, float]]) -> str:
        """Save `ratings` as a new profile; its private token. InvalidRatings."""
        checked = await self._checked(ratings)
        token = new_secret()
        async with await self._transaction() as connection:
            await stored.insert_profile(connection, digest(token), self._clock())
            await stored.replace_ratings(connection, digest(token), checked)
        return token

    async def get(self, token: str) -> tuple[tuple[int, float], ...]:
        """The profile's ratings, by movie id; ProfileNotFound."""
        async with await self._transaction() as connection:
            await self._touch(connection, token)
            return await stored.ratings(connection, digest(token))

    async def update(
        self,
        token: str,
        ratings: Sequence[tuple[int, float]],
        expected: Sequence[tuple[int, float]] | None = None,
    ) -> None:
        """Replace the profile's ratings, in one transaction. ProfileNotFound, InvalidRatings.

        With `expected` (the ratings, as `get` gave them, that the new ones were made from),
        ProfileChanged and nothing written unless they are still the ones stored: two changes
        made at once from the same ratings would otherwise each drop the other's.
        """
        checked = await self._checked(ratings)
        async with await self._transaction() as connection:
            # The touch writes the profile's row first, so a second change waits here for the
            # first to commit (SQLite's write lock, PostgreSQL's row lock) and then reads it.
            await self._touch(connection, token)
            if expected is not None and (
                await stored.ratings(connection, digest(token)) != tuple(expected)
            ):
                raise ProfileChanged()
            await stored.replace_ratings(connection, digest(token), checked)

    async def forget(self, token: str) -> None:
        """Delete the profile and its ratings at once; ProfileNotFound if there is none."""
        async with await self._transaction() as connection:
            if not await stored.delete_profile(connection, digest(token)):
                raise ProfileNotFound()

    async def expire(self) -> int:
        """Delete the profiles unused for PROFILE_TTL; how many went."""
        async with await self._transaction() as connection:
            return await stored.delete_unused(connection, self._clock() - self._ttl)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(EXPIRE_EVERY, self.settings.profile_ttl / 10))
            try:
                gone = await self.expire()
            except DatabaseUnavailable as exc:
                log.warning("Could not delete unused profiles: %s", exc)
                continue
            if gone:
                log.info("Deleted %d saved profile(s) unused for PROFILE_TTL", gone)

    async def _transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The database's next transaction, once it has started (briefly waited for); the
        database itself answers DatabaseUnavailable if it never does."""
        for _ in range(int(START_WAIT / START_POLL)):
            if self.database.started:
                break
            await asyncio.sleep(START_POLL)
        return self.database.transaction()

    async def _checked(self, ratings: Sequence[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
        if len(ratings) > MAX_RATINGS:
            raise InvalidRatings(f"A profile holds at most {MAX_RATINGS} ratings.")
        return tuple((await self._checker.check_ratings(ratings)).pairs())

    async def _touch(self, connection: AsyncConnection, token: str) -> None:
        now = self._clock()
        if not await stored.touch(connection, digest(token), now, now - self._ttl):
            raise ProfileNotFound()
