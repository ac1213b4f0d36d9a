"""Movie nights: friends join one night, rate films, and get one list that suits the group.

`Nights` holds the rules (at most MAX_MEMBERS members, MAX_NIGHT_RATINGS ratings each,
names up to MAX_NAME characters, NIGHT_CREATE_LIMIT starts an hour per client address, a
member's token for each change of theirs) and keeps everything in the database through
app.store.nights, one transaction per call. Ids and tokens are 128 random bits from
`secrets`; only a token's SHA-256 is stored. A night lives NIGHT_TTL past its last change;
a task started with the Service deletes the expired ones (app/engine/night_access.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.engine.group import GroupRecommendations
from app.engine.imports import join_ratings
from app.engine.night_access import NightAccess
from app.engine.night_rules import (
    DEFAULT_NIGHT_N,
    MAX_MEMBERS,
    MAX_NIGHT_RATINGS,
    GroupRecommender,
    NightFull,
    NightNotFound,
    TooManyRatings,
    check_name,
    digest,
    highest_rated,
    new_secret,
)
from app.engine.night_rules import MAX_NAME as MAX_NAME
from app.engine.night_rules import Forbidden as Forbidden
from app.engine.night_rules import InvalidName as InvalidName
from app.engine.night_rules import NightError as NightError
from app.engine.night_rules import TooManyNights as TooManyNights
from app.engine.queries import InvalidRatings
from app.store import Database
from app.store import DatabaseUnavailable as DatabaseUnavailable
from app.store import nights as stored
from app.store.nights import StoredMember, StoredNight

Pairs = Sequence[tuple[int, float]]
"""Ratings as (movie id, rating) pairs."""


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


@dataclass(frozen=True)
class Brought:
    """A member once their ratings from elsewhere are in: `replaced` films they had rated
    took the new rating; `left_out` ratings did not fit under MAX_NIGHT_RATINGS."""

    member: Member
    replaced: int
    left_out: int


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
    """Movie nights kept in the database: start, join, rate, bring ratings, decide, expire."""

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
        self._access = NightAccess(settings, database, clock)

    def start(self) -> None:
        """Start the database (retried) and the sweeps of expired nights, on the event loop."""
        self._access.start()

    async def stop(self) -> None:
        """Stop the sweeps and close the database's connections."""
        await self._access.stop()

    async def expire(self) -> int:
        """Delete the nights past NIGHT_TTL without activity; how many went."""
        return await self._access.expire()

    async def create(self, client: str) -> Night:
        """Start a night; TooManyNights past NIGHT_CREATE_LIMIT this hour from `client`."""
        async with await self._access.transaction() as connection:
            return await self._insert(connection, client)

    async def create_joined(
        self, client: str, name: str, ratings: Pairs = ()
    ) -> tuple[Night, Member, str]:
        """Start a night and join it as `name` with `ratings` (the highest rated, past
        MAX_NIGHT_RATINGS), all or nothing: the night, its member and their token.
        InvalidName, InvalidRatings, TooManyNights."""
        name = check_name(name)
        checked = await self._checked(highest_rated(ratings)) if ratings else ()
        async with await self._access.transaction() as connection:
            night = await self._insert(connection, client)
            member, token = await self._add(connection, night.id, name, checked)
            found = await stored.load(connection, night.id, self._access.clock())
        assert found is not None
        return _night(found), member, token

    async def get(self, night_id: str) -> Night:
        """The night as it is now; NightNotFound if unknown or expired."""
        async with await self._access.transaction(reading=True) as connection:
            found = await stored.load(connection, night_id, self._access.clock())
        if found is None:
            raise NightNotFound()
        return _night(found)

    async def version(self, night_id: str) -> int:
        """The night's version alone (cheap, for pages that poll for changes)."""
        async with await self._access.transaction(reading=True) as connection:
            found = await stored.version(connection, night_id, self._access.clock())
        if found is None:
            raise NightNotFound()
        return found

    async def join(self, night_id: str, name: str, ratings: Pairs = ()) -> tuple[Member, str]:
        """Add a member with the `ratings` they bring, if any (the highest rated, past
        MAX_NIGHT_RATINGS), in one transaction; their Member and the bearer token for their
        changes. NightFull with MAX_MEMBERS members already, InvalidName, InvalidRatings."""
        name = check_name(name)
        checked = await self._checked(highest_rated(ratings)) if ratings else ()
        async with await self._access.transaction() as connection:
            return await self._add(connection, night_id, name, checked)

    async def set_ratings(
        self, night_id: str, member_id: str, token: str, ratings: Pairs
    ) -> Member:
        """Replace the member's ratings. Forbidden, InvalidRatings or TooManyRatings."""
        await self.check_member(night_id, member_id, token)
        if len(ratings) > MAX_NIGHT_RATINGS:
            raise TooManyRatings()
        checked = await self._checked(ratings)
        async with await self._access.transaction() as connection:
            await self._access.authorised(connection, night_id, member_id, token)
            await stored.replace_ratings(connection, member_id, checked)
            return _member(await stored.member(connection, member_id))

    async def bring(
        self, night_id: str, member_id: str, token: str, ratings: Pairs, *, add: bool = False
    ) -> Brought:
        """Ratings from elsewhere (a MovieLens user, a link, a saved profile, an export)
        replace the member's, or with `add` join them, winning where both rate a film; past
        MAX_NIGHT_RATINGS the highest rated are kept. Forbidden, InvalidRatings."""
        await self.check_member(night_id, member_id, token)
        checked = await self._checked(ratings if add else highest_rated(ratings))
        async with await self._access.transaction() as connection:
            await self._access.authorised(connection, night_id, member_id, token)
            mine = (await stored.member(connection, member_id)).ratings if add else ()
            joined = join_ratings(mine, checked)
            kept = highest_rated(joined.pairs)
            await stored.replace_ratings(connection, member_id, kept)
            member = _member(await stored.member(connection, member_id))
        left_out = len(joined.pairs) - len(kept) + len(ratings) - len(checked)
        return Brought(member, len(joined.replaced), left_out)

    async def rate(
        self, night_id: str, member_id: str, token: str, movie_id: int, rating: float | None
    ) -> Member:
        """Rate one film, or remove its rating (None). Forbidden, InvalidRatings, TooManyRatings."""
        if rating is not None:
            await self.check_member(night_id, member_id, token)
            await self._recommender.check_ratings([(movie_id, rating)])
        async with await self._access.transaction() as connection:
            await self._access.authorised(connection, night_id, member_id, token)
            await stored.set_rating(connection, member_id, movie_id, rating)
            if await stored.rating_count(connection, member_id) > MAX_NIGHT_RATINGS:
                raise TooManyRatings()
            return _member(await stored.member(connection, member_id))

    async def leave(self, night_id: str, member_id: str, token: str) -> None:
        """Remove the member and their ratings from the night. Forbidden."""
        async with await self._access.transaction() as connection:
            await self._access.authorised(connection, night_id, member_id, token)
            await stored.remove_member(connection, member_id)

    async def set_aside(self, night_id: str, member_id: str, token: str, movie_id: int) -> Night:
        """Set a film aside for everyone ("not tonight"). Forbidden, InvalidRatings."""
        await self.check_member(night_id, member_id, token)
        await self._check_film(movie_id)
        async with await self._access.transaction() as connection:
            now = await self._access.authorised(connection, night_id, member_id, token)
            await stored.add_set_aside(connection, night_id, movie_id, now)
            found = await stored.load(connection, night_id, now)
        assert found is not None
        return _night(found)

    async def pick(self, night_id: str, member_id: str, token: str, movie_id: int | None) -> Night:
        """Mark the night's pick, or clear it (None). Forbidden, InvalidRatings."""
        if movie_id is not None:
            await self.check_member(night_id, member_id, token)
            await self._check_film(movie_id)
        async with await self._access.transaction() as connection:
            now = await self._access.authorised(connection, night_id, member_id, token)
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

    async def check_member(self, night_id: str, member_id: str, token: str) -> None:
        """NightNotFound or Forbidden unless `token` is this member's, changing nothing.
        Every change checks this first, so that it is refused as such whatever it carries
        (callers may check before reading that); the change checks again as it is made."""
        await self._access.check_member(night_id, member_id, token)

    async def _insert(self, connection: AsyncConnection, client: str) -> Night:
        """A new night, counted against `client`'s starts this hour (TooManyNights)."""
        now = await self._access.count_start(connection, client)
        night_id, expires = new_secret(), now + self._access.ttl
        await stored.insert_night(connection, night_id, now, expires)
        return Night(night_id, now, expires, 1, (), (), None)

    async def _add(
        self, connection: AsyncConnection, night_id: str, name: str, checked: Pairs
    ) -> tuple[Member, str]:
        """A new member of the night with their (checked) ratings, and their token. NightFull."""
        now = await self._access.touch(connection, night_id)
        if await stored.member_count(connection, night_id) >= MAX_MEMBERS:
            raise NightFull()
        member_id, token = new_secret(), new_secret()
        await stored.add_member(connection, night_id, member_id, name, digest(token), now)
        if not checked:
            return Member(member_id, name, ()), token
        await stored.replace_ratings(connection, member_id, checked)
        return _member(await stored.member(connection, member_id)), token

    async def _checked(self, ratings: Pairs) -> tuple[tuple[int, float], ...]:
        return tuple((await self._recommender.check_ratings(ratings)).pairs())

    async def _check_film(self, movie_id: int) -> None:
        try:
            await self._recommender.check_ratings([(movie_id, 5.0)])
        except InvalidRatings:
            raise InvalidRatings(f"There is no film with id {movie_id}.") from None
