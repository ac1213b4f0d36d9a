"""The movie nights' database as `Nights` uses it: started in the background (and retried
while it cannot be reached), a transaction per call once it is up, the sweep of expired
nights, and the checks every change makes first (the night is live; the token is the
member's own).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from app.backoff import Backoff
from app.config import Settings
from app.engine.night_rules import Forbidden, NightNotFound, TooManyNights, digest
from app.store import Database, DatabaseUnavailable
from app.store import nights as stored

log = logging.getLogger(__name__)

EXPIRE_EVERY = 300.0
"""Seconds between sweeps for expired nights (or a tenth of NIGHT_TTL, if that is shorter)."""
START_WAIT = 5.0
"""Seconds a call waits for the database's first start before answering DatabaseUnavailable."""
START_BACKOFF = Backoff(first=1.0, most=30.0)
"""Pauses between attempts to start the database when it cannot be reached."""


class NightAccess:
    """The nights' database, clock and time to live; who may start a night, and who may
    change one."""

    def __init__(
        self, settings: Settings, database: Database, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.ttl = timedelta(seconds=settings.night_ttl)
        self._task: asyncio.Task[None] | None = None
        self._first_start = asyncio.Event()

    def start(self) -> None:
        """Start the database in the background, then sweep expired nights every few minutes."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        """Stop the sweeps and close the database's connections."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.database.stop()

    async def transaction(
        self, reading: bool = False
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        """The database's next transaction, once it has started (briefly waited for)."""
        if not self.database.started and self._task is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._first_start.wait(), START_WAIT)
        return self.database.transaction(reading=reading)

    async def count_start(self, connection: AsyncConnection, client: str) -> datetime:
        """Count a start of a night from `client`; its time. TooManyNights past
        NIGHT_CREATE_LIMIT starts from there this hour."""
        now = self.clock()
        hour = now.replace(minute=0, second=0, microsecond=0)
        count = await stored.count_start(connection, digest(client), hour)
        if count > self.settings.night_create_limit:
            left = int((hour + timedelta(hours=1) - now).total_seconds())
            raise TooManyNights(self.settings.night_create_limit, left)
        return now

    async def touch(self, connection: AsyncConnection, night_id: str) -> datetime:
        """Mark a change to the night (version and expiry); its time. NightNotFound."""
        now = self.clock()
        if not await stored.touch(connection, night_id, now, now + self.ttl):
            raise NightNotFound()
        return now

    async def authorised(
        self, connection: AsyncConnection, night_id: str, member_id: str, token: str
    ) -> datetime:
        """touch(), then Forbidden unless `token` is the member's own."""
        now = await self.touch(connection, night_id)
        _check_token(await stored.token_of(connection, night_id, member_id), token)
        return now

    async def check_member(self, night_id: str, member_id: str, token: str) -> None:
        """NightNotFound or Forbidden unless `token` is this member's, changing nothing."""
        async with await self.transaction(reading=True) as connection:
            if await stored.version(connection, night_id, self.clock()) is None:
                raise NightNotFound()
            expected = await stored.token_of(connection, night_id, member_id)
        _check_token(expected, token)

    async def expire(self) -> int:
        """Delete the nights past NIGHT_TTL without activity; how many went."""
        now = self.clock()
        async with await self.transaction() as connection:
            gone = await stored.delete_expired(connection, now)
            await stored.forget_starts(connection, now - timedelta(hours=1))
        if gone:
            log.info("Deleted %d movie night(s) idle for NIGHT_TTL", gone)
        return gone

    async def _keep(self) -> None:
        """Start the database (retrying with backoff), then sweep expired nights forever."""
        failures = 0
        while True:
            try:
                await self.database.start()
                break
            except Exception as exc:
                failures += 1
                self._first_start.set()
                if failures == 1 and isinstance(exc, DatabaseUnavailable):
                    log.error("Movie nights are unavailable: %s", exc)
                elif failures == 1:
                    log.exception("Movie nights are unavailable: the database failed to start")
                await asyncio.sleep(START_BACKOFF.pause(failures))
        self._first_start.set()
        if failures:
            log.info("Movie nights are available again")
        every = min(EXPIRE_EVERY, self.settings.night_ttl / 10)
        while True:
            await asyncio.sleep(every)
            try:
                await self.expire()
            except DatabaseUnavailable as exc:
                log.warning("Could not delete expired movie nights: %s", exc)


def _check_token(expected: str | None, token: str) -> None:
    # Compared in constant time: how long it takes tells nothing of the stored digest.
    if expected is None or not hmac.compare_digest(expected, digest(token)):
        raise Forbidden()
