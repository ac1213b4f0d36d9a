"""Movie nights: friends join one night, rate films, and get one list that suits the group.

`Nights` holds the rules (at most MAX_MEMBERS members, MAX_NIGHT_RATINGS ratings each,
names up to MAX_NAME characters, NIGHT_CREATE_LIMIT starts an hour per client address, a
member's token for each change of theirs) and keeps everything in the database through
app.store.nights, one transaction per call. Ids and tokens are 128 random bits from
`secrets`; only a token's SHA-256 is stored. A night lives NIGHT_TTL past its last change;
a task started with the Service deletes the expired ones.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from app.backoff import Backoff
from app.config import Settings
from app.engine.group import GroupRecommendations
from app.engine.night_rules import (
    DEFAULT_NIGHT_N,
    MAX_MEMBERS,
    MAX_NIGHT_RATINGS,
    Forbidden,
    GroupRecommender,
    NightFull,
    NightNotFound,
    TooManyNights,
    TooManyRatings,
    check_name,
    digest,
    new_secret,
)
from app.engine.night_rules import MAX_NAME as MAX_NAME
from app.engine.night_rules import InvalidName as InvalidName
from app.engine.night_rules import NightError as NightError
from app.engine.queries import InvalidRatings
from app.store import Database
from app.store import DatabaseUnavailable as DatabaseUnavailable
from app.store import nights as stored
from app.store.nights import StoredMember, StoredNight

log = logging.getLogger(__name__)


EXPIRE_EVERY = 300.0
"""Seconds between sweeps for expired nights (or a tenth of NIGHT_TTL, if that is shorter)."""
START_WAIT = 5.0
"""Seconds a call waits for the database's first start before answering DatabaseUnavailable."""
START_BACKOFF = Backoff(first=1.0, most=30.0)
"""Pauses between attempts to start the database when it cannot be reached."""


@dataclass(frozen=True)
class Member:
    """A member of a night: their id, display name and ratings (by movie id)."""

    id: str
    name: str
    ratings: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Night:
    """A night as it is now; `version` grows on every change to it."""

    id: str
    created_at: datetime
    expires_at: datetime
    version: int
    members: tuple[Member, ...]
    set_aside: tuple[int, ...]
    picked: int | None


@dataclass(frozen=True)
class NightList:
    """A night and the group's list for it."""

    night: Night
    recommendations: GroupRecommendations


def _night(found: StoredNight) -> Night:
    return Night(
        id=found.id,
        created_at=found.created_at,
        expires_at=found.expires_at,
        version=found.version,
        members=tuple(_member(m) for m in found.members),
        set_aside=found.set_aside,
        picked=found.picked,
    )


def _member(found: StoredMember) -> Member:
    return Member(found.id, found.name, found.ratings)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Nights:
    """Movie nights kept in the database: start, join, rate, decide, expire."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        recommender: GroupRecommender,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.database = database
        self._recommender = recommender
        self._clock = clock
        self._ttl = timedelta(seconds=settings.night_ttl)
        self._task: asyncio.Task[None] | None = None
        self._first_start = asyncio.Event()

    def start(self) -> None:
        """Start the database in the background (retrying while it is unreachable), then
        sweep expired nights every few minutes. Call on the event loop at start-up."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        """Stop the sweeps and close the database's connections."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.database.stop()

    async def create(self, client: str) -> Night:
        """Start a night; TooManyNights past NIGHT_CREATE_LIMIT this hour from `client`."""
        now = self._clock()
        hour = now.replace(minute=0, second=0, microsecond=0)
        night_id = new_secret()
        async with await self._transaction() as connection:
            count = await stored.count_start(connection, digest(client), hour)
            if count > self.settings.night_create_limit:
                left = int((hour + timedelta(hours=1) - now).total_seconds())
                raise TooManyNights(self.settings.night_create_limit, left)
            await stored.insert_night(connection, night_id, now, now + self._ttl)
        return Night(night_id, now, now + self._ttl, 1, (), (), None)

    async def get(self, night_id: str) -> Night:
        """The night as it is now; NightNotFound if unknown or expired."""
        async with await self._transaction(reading=True) as connection:
            found = await stored.load(connection, night_id, self._clock())
        if found is None:
            raise NightNotFound()
        return _night(found)

    async def version(self, night_id: str) -> int:
        """The night's version alone (cheap, for pages that poll for changes)."""
        async with await self._transaction(reading=True) as connection:
            found = await stored.version(connection, night_id, self._clock())
        if found is None:
            raise NightNotFound()
        return found

    async def join(self, night_id: str, name: str) -> tuple[Member, str]:
        """Add a member; their Member and the bearer token for their changes.

        NightFull with MAX_MEMBERS members already, InvalidName for a bad name.
        """
        name = check_name(name)
        member_id, token = new_secret(), new_secret()
        async with await self._transaction() as connection:
            now = await self._touch(connection, night_id)
            if await stored.member_count(connection, night_id) >= MAX_MEMBERS:
                raise NightFull()
            await stored.add_member(connection, night_id, member_id, name, digest(token), now)
        return Member(member_id, name, ()), token

    async def set_ratings(
        self,
        night_id: str,
        member_id: str,
        token: str,
        ratings: Sequence[tuple[int, float]],
    ) -> Member:
        """Replace the member's ratings. Forbidden, InvalidRatings or TooManyRatings."""
        await self.check_member(night_id, member_id, token)
        if len(ratings) > MAX_NIGHT_RATINGS:
            raise TooManyRatings()
        checked = (await self._recommender.check_ratings(ratings)).pairs()
        async with await self._transaction() as connection:
            await self._authorised(connection, night_id, member_id, token)
            await stored.replace_ratings(connection, member_id, checked)
            return _member(await stored.member(connection, member_id))

    async def rate(
        self, night_id: str, member_id: str, token: str, movie_id: int, rating: float | None
    ) -> Member:
        """Rate one film, or remove its rating (None). Forbidden, InvalidRatings, TooManyRatings."""
        if rating is not None:
            await self.check_member(night_id, member_id, token)
            await self._recommender.check_ratings([(movie_id, rating)])
        async with await self._transaction() as connection:
            await self._authorised(connection, night_id, member_id, token)
            await stored.set_rating(connection, member_id, movie_id, rating)
            if await stored.rating_count(connection, member_id) > MAX_NIGHT_RATINGS:
                raise TooManyRatings()
            return _member(await stored.member(connection, member_id))

    async def leave(self, night_id: str, member_id: str, token: str) -> None:
        """Remove the member and their ratings from the night. Forbidden."""
        async with await self._transaction() as connection:
            await self._authorised(connection, night_id, member_id, token)
            await stored.remove_member(connection, member_id)

    async def set_aside(self, night_id: str, member_id: str, token: str, movie_id: int) -> Night:
        """Set a film aside for everyone ("not tonight"). Forbidden, InvalidRatings."""
        await self.check_member(night_id, member_id, token)
        await self._check_film(movie_id)
        async with await self._transaction() as connection:
            now = await self._authorised(connection, night_id, member_id, token)
            await stored.add_set_aside(connection, night_id, movie_id, now)
            found = await stored.load(connection, night_id, now)
        assert found is not None
        return _night(found)

    async def pick(self, night_id: str, member_id: str, token: str, movie_id: int | None) -> Night:
        """Mark the night's pick, or clear it (None). Forbidden, InvalidRatings."""
        if movie_id is not None:
            await self.check_member(night_id, member_id, token)
            await self._check_film(movie_id)
        async with await self._transaction() as connection:
            now = await self._authorised(connection, night_id, member_id, token)
            await stored.set_pick(connection, night_id, movie_id)
            found = await stored.load(connection, night_id, now)
        assert found is not None
        return _night(found)

    async def recommendations(
        self, night_id: str, n: int = DEFAULT_NIGHT_N, strategy: str | None = None
    ) -> NightList:
        """The night and the group's list: members' ratings in joining order, set-aside films
        excluded (and, by the strategy, every film a member rated)."""
        night = await self.get(night_id)
        chosen = await self._recommender.recommend_for_group(
            [member.ratings for member in night.members],
            n=n,
            strategy=strategy,
            exclude=night.set_aside,
        )
        return NightList(night, chosen)

    async def expire(self) -> int:
        """Delete the nights past NIGHT_TTL without activity; how many went."""
        now = self._clock()
        async with await self._transaction() as connection:
            gone = await stored.delete_expired(connection, now)
            await stored.forget_starts(connection, now - timedelta(hours=1))
        if gone:
            log.info("Deleted %d movie night(s) idle for NIGHT_TTL", gone)
        return gone

    async def _transaction(
        self, reading: bool = False
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        """The database's next transaction, once it has started (briefly waited for)."""
        if not self.database.started and self._task is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._first_start.wait(), START_WAIT)
        return self.database.transaction(reading=reading)

    async def _touch(self, connection: AsyncConnection, night_id: str) -> datetime:
        """Mark a change to the night (version and expiry); its time. NightNotFound."""
        now = self._clock()
        if not await stored.touch(connection, night_id, now, now + self._ttl):
            raise NightNotFound()
        return now

    async def _authorised(
        self, connection: AsyncConnection, night_id: str, member_id: str, token: str
    ) -> datetime:
        """_touch(), then Forbidden unless `token` is the member's own."""
        now = await self._touch(connection, night_id)
        expected = await stored.token_of(connection, night_id, member_id)
        # Compared in constant time: how long it takes tells nothing of the stored digest.
        if expected is None or not hmac.compare_digest(expected, digest(token)):
            raise Forbidden()
        return now

    async def check_member(self, night_id: str, member_id: str, token: str) -> None:
        """NightNotFound or Forbidden unless `token` is this member's, changing nothing.

        Every change checks this first, so that a change to an unknown night or by the wrong
        member is refused as such whatever it carries (and callers may check before reading
        what it carries); the change itself checks again, in its own transaction.
        """
        async with await self._transaction(reading=True) as connection:
            if await stored.version(connection, night_id, self._clock()) is None:
                raise NightNotFound()
            expected = await stored.token_of(connection, night_id, member_id)
        if expected is None or not hmac.compare_digest(expected, digest(token)):
            raise Forbidden()

    async def _check_film(self, movie_id: int) -> None:
        try:
            await self._recommender.check_ratings([(movie_id, 5.0)])
        except InvalidRatings:
            raise InvalidRatings(f"There is no film with id {movie_id}.") from None

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
