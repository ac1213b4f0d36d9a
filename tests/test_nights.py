"""Movie nights, the domain: the bounds, tokens, versions, expiry and the group's list.

Every test runs on SQLite and on a real PostgreSQL (`database_url`, tests/postgres.py). The
films are checked against the tiny release by a real Service; the group's list is what
`Group` records, since choosing it is the group strategies' concern.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.engine import InvalidRatings, Ratings, Service
from app.engine.night_rules import highest_rated
from app.engine.nights import (
    MAX_MEMBERS,
    MAX_NAME,
    MAX_NIGHT_RATINGS,
    Forbidden,
    InvalidName,
    Night,
    NightFull,
    NightNotFound,
    Nights,
    TooManyNights,
    TooManyRatings,
)
from app.store import Database, DatabaseUnavailable
from app.store.schema import members
from app.store.schema import nights as nights_table

START = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Group:
    """The Service's film check, and a record of what the group's list is asked for."""

    service: Service
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        return await self.service.check_ratings(pairs)

    async def recommend_for_group(
        self,
        members: Sequence[Sequence[tuple[int, float]]],
        n: int = 10,
        strategy: str | None = None,
        exclude: Collection[int] = (),
    ) -> str:
        self.asked.append(
            {
                "members": [list(m) for m in members],
                "n": n,
                "strategy": strategy,
                "exclude": set(exclude),
            }
        )
        return "the group's list"


@pytest.fixture
def clock() -> Clock:
    """The time the nights see."""
    return Clock()


@pytest.fixture
async def group(settings: Settings, tiny_zip: Path) -> AsyncIterator[Group]:
    """A Service serving the tiny release (films 10-60), wrapped to record group lists."""
    service = Service(settings.replace(source=str(tiny_zip)))
    service.start()
    await service.loaded(60)
    yield Group(service)
    await service.stop()


@pytest.fixture
async def nights(
    settings: Settings, database_url: str, group: Group, clock: Clock
) -> AsyncIterator[Nights]:
    """Nights on a fresh database, limited to 3 starts an hour, living 48 hours."""
    database = Database(database_url)
    await database.start()
    configured = settings.replace(night_create_limit=3, night_ttl=48 * 3600.0)
    nights = Nights(configured, database, group, clock=clock)
    yield nights
    await nights.stop()


async def test_a_night_starts_empty_and_expires_after_the_ttl(nights: Nights, clock: Clock) -> None:
    night = await nights.create("192.0.2.1")
    assert night.members == () and night.set_aside == () and night.picked is None
    assert night.created_at == START
    assert night.expires_at == START + timedelta(hours=48)
    assert await nights.get(night.id) == night


async def test_ids_and_tokens_are_random_and_url_safe(nights: Nights) -> None:
    first = await nights.create("192.0.2.1")
    second = await nights.create("192.0.2.1")
    member, token = await nights.join(first.id, "Ana")
    assert first.id != second.id
    for secret in (first.id, second.id, member.id, token):
        # 128 bits in URL-safe base64.
        assert len(secret) == 22 and set(secret) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


async def test_tokens_are_stored_only_as_their_hash(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    _, token = await nights.join(night.id, "Ana")
    async with nights.database.transaction() as connection:
        stored = (await connection.execute(members.select())).one()
    assert token not in tuple(str(value) for value in stored)
    assert len(stored.token_sha256) == 64


async def test_members_join_in_order_and_the_thirteenth_is_refused(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    joined = [(await nights.join(night.id, f"Friend {i}"))[0] for i in range(MAX_MEMBERS)]
    with pytest.raises(NightFull):
        await nights.join(night.id, "One too many")
    found = await nights.get(night.id)
    assert [m.id for m in found.members] == [m.id for m in joined]
    assert [m.name for m in found.members] == [f"Friend {i}" for i in range(MAX_MEMBERS)]


async def test_twelve_joining_at_once_all_fit_and_a_thirteenth_does_not(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    tries = await asyncio.gather(
        *(nights.join(night.id, f"Friend {i}") for i in range(MAX_MEMBERS + 3)),
        return_exceptions=True,
    )
    assert sum(not isinstance(t, BaseException) for t in tries) == MAX_MEMBERS
    assert all(isinstance(t, NightFull) for t in tries if isinstance(t, BaseException))
    assert len((await nights.get(night.id)).members) == MAX_MEMBERS


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME + 1), "Ana\nBen", "Ana\x00"])
async def test_a_name_must_be_given_and_short(nights: Nights, name: str) -> None:
    night = await nights.create("192.0.2.1")
    with pytest.raises(InvalidName):
        await nights.join(night.id, name)


async def test_a_name_is_trimmed_and_kept_as_written(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    member, _ = await nights.join(night.id, "  Chloé   <b>&</b> " + "é" * 23 + " ")
    assert member.name == "Chloé   <b>&</b> " + "é" * 23
    assert (await nights.get(night.id)).members[0].name == member.name


async def test_ratings_are_replaced_and_each_film_rated_once(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana")
    await nights.set_ratings(night.id, ana.id, token, [(10, 4.5), (20, 2)])
    changed = await nights.set_ratings(night.id, ana.id, token, [(30, 5), (10, 1)])
    assert changed.ratings == ((10, 1.0), (30, 5.0))
    assert (await nights.get(night.id)).members[0].ratings == ((10, 1.0), (30, 5.0))


async def test_one_film_is_rated_changed_and_removed(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana")
    await nights.rate(night.id, ana.id, token, 10, 4.0)
    await nights.rate(night.id, ana.id, token, 20, 3.5)
    await nights.rate(night.id, ana.id, token, 10, 2.5)
    assert (await nights.rate(night.id, ana.id, token, 20, None)).ratings == ((10, 2.5),)


@pytest.mark.parametrize(
    "ratings", [[(999, 4.0)], [(10, 4.2)], [(10, 6.0)], [(10, 4.0), (10, 3.0)]]
)
async def test_bad_ratings_are_refused_and_nothing_changes(
    nights: Nights, ratings: list[tuple[int, float]]
) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana")
    await nights.set_ratings(night.id, ana.id, token, [(50, 3.0)])
    with pytest.raises(InvalidRatings):
        await nights.set_ratings(night.id, ana.id, token, ratings)
    assert (await nights.get(night.id)).members[0].ratings == ((50, 3.0),)


async def test_more_than_the_most_ratings_are_refused(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana")
    too_many = [(movie_id, 4.0) for movie_id in range(1, MAX_NIGHT_RATINGS + 2)]
    with pytest.raises(TooManyRatings):
        await nights.set_ratings(night.id, ana.id, token, too_many)


async def test_a_member_joins_with_the_ratings_they_bring_or_not_at_all(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana", [(30, 5.0), (10, 4.5)])
    assert ana.ratings == ((10, 4.5), (30, 5.0))
    assert (await nights.get(night.id)).members[0].ratings == ana.ratings
    await nights.rate(night.id, ana.id, token, 20, 2.0)  # the token is theirs
    with pytest.raises(InvalidRatings):
        await nights.join(night.id, "Ben", [(10, 4.0), (999, 3.0)])
    assert [m.name for m in (await nights.get(night.id)).members] == ["Ana"]


async def test_a_night_starts_with_its_first_member_all_at_once(nights: Nights) -> None:
    night, ana, token = await nights.create_joined("192.0.2.1", " Ana ", [(20, 3.5)])
    assert [(m.id, m.name, m.ratings) for m in night.members] == [(ana.id, "Ana", ((20, 3.5),))]
    assert await nights.get(night.id) == night
    await nights.rate(night.id, ana.id, token, 10, 4.0)
    # A bad name or film starts nothing: the address's three starts an hour are all left.
    with pytest.raises(InvalidName):
        await nights.create_joined("192.0.2.9", "", [(20, 3.5)])
    with pytest.raises(InvalidRatings):
        await nights.create_joined("192.0.2.9", "Ben", [(999, 3.5)])
    for _ in range(3):
        await nights.create("192.0.2.9")
    with pytest.raises(TooManyNights):
        await nights.create_joined("192.0.2.9", "Ben")


async def test_ratings_brought_replace_or_join_a_members_own(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana", [(10, 2.0), (20, 3.0)])
    added = await nights.bring(night.id, ana.id, token, [(10, 4.5), (30, 5.0), (20, 3.0)], add=True)
    # Film 10 takes the brought rating; film 20 was rated the same, so nothing changed there.
    assert added.member.ratings == ((10, 4.5), (20, 3.0), (30, 5.0))
    assert (added.replaced, added.left_out) == (1, 0)
    replaced = await nights.bring(night.id, ana.id, token, [(50, 1.0)])
    assert replaced.member.ratings == ((50, 1.0),) and replaced.replaced == 0
    with pytest.raises(InvalidRatings):
        await nights.bring(night.id, ana.id, token, [(999, 1.0)], add=True)
    with pytest.raises(Forbidden):
        await nights.bring(night.id, ana.id, "not-a-token", [(10, 1.0)], add=True)
    assert (await nights.get(night.id)).members[0].ratings == ((50, 1.0),)


def test_past_the_limit_the_highest_rated_are_kept_in_their_order() -> None:
    ratings = [(1, 2.0), (2, 5.0), (3, 4.0), (4, 5.0), (5, 4.0), (6, 0.5)]
    assert highest_rated(ratings, most=4) == ((2, 5.0), (3, 4.0), (4, 5.0), (5, 4.0))
    assert highest_rated(ratings, most=3) == ((2, 5.0), (3, 4.0), (4, 5.0)), "ties: the earlier"
    assert highest_rated(ratings) == tuple(ratings)
    many = [(movie_id, 3.0) for movie_id in range(MAX_NIGHT_RATINGS + 50)]
    assert len(highest_rated(many)) == MAX_NIGHT_RATINGS


async def test_only_the_member_may_change_their_ratings(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, ana_token = await nights.join(night.id, "Ana")
    ben, ben_token = await nights.join(night.id, "Ben")
    await nights.set_ratings(night.id, ana.id, ana_token, [(10, 5.0)])
    with pytest.raises(Forbidden):
        await nights.set_ratings(night.id, ana.id, ben_token, [(10, 0.5)])
    with pytest.raises(Forbidden):
        await nights.rate(night.id, ana.id, "not-a-token", 10, None)
    with pytest.raises(Forbidden):
        await nights.leave(night.id, ana.id, ben_token)
    # A member of one night has no say in another.
    other = await nights.create("192.0.2.1")
    with pytest.raises(Forbidden):
        await nights.set_ratings(other.id, ben.id, ben_token, [(10, 1.0)])
    assert (await nights.get(night.id)).members[0].ratings == ((10, 5.0),)


async def test_a_member_who_leaves_takes_their_ratings(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, ana_token = await nights.join(night.id, "Ana")
    ben, _ = await nights.join(night.id, "Ben")
    await nights.set_ratings(night.id, ana.id, ana_token, [(10, 5.0)])
    await nights.leave(night.id, ana.id, ana_token)
    assert [m.id for m in (await nights.get(night.id)).members] == [ben.id]
    with pytest.raises(Forbidden):
        await nights.rate(night.id, ana.id, ana_token, 20, 3.0)


async def test_every_change_moves_the_version_on(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    versions = [await nights.version(night.id)]
    ana, token = await nights.join(night.id, "Ana")
    versions.append(await nights.version(night.id))
    await nights.set_ratings(night.id, ana.id, token, [(10, 4.0)])
    versions.append(await nights.version(night.id))
    await nights.rate(night.id, ana.id, token, 20, 3.0)
    versions.append(await nights.version(night.id))
    versions.append((await nights.set_aside(night.id, ana.id, token, 30)).version)
    versions.append((await nights.pick(night.id, ana.id, token, 50)).version)
    await nights.leave(night.id, ana.id, token)
    versions.append(await nights.version(night.id))
    assert versions == sorted(set(versions)), versions
    # A refused change changes nothing.
    with pytest.raises(Forbidden):
        await nights.rate(night.id, ana.id, token, 20, 3.0)
    assert await nights.version(night.id) == versions[-1]


async def test_set_aside_and_the_pick_are_shared(nights: Nights, clock: Clock) -> None:
    night = await nights.create("192.0.2.1")
    ana, token = await nights.join(night.id, "Ana")
    await nights.set_aside(night.id, ana.id, token, 30)
    clock.advance(seconds=1)
    await nights.set_aside(night.id, ana.id, token, 30)
    found = await nights.set_aside(night.id, ana.id, token, 20)
    assert found.set_aside == (30, 20)
    assert (await nights.pick(night.id, ana.id, token, 50)).picked == 50
    assert (await nights.get(night.id)).picked == 50
    assert (await nights.pick(night.id, ana.id, token, None)).picked is None
    with pytest.raises(InvalidRatings):
        await nights.pick(night.id, ana.id, token, 999)


async def test_the_group_list_gets_members_in_order_and_set_aside_films(
    nights: Nights, group: Group
) -> None:
    night = await nights.create("192.0.2.1")
    ana, ana_token = await nights.join(night.id, "Ana")
    ben, ben_token = await nights.join(night.id, "Ben")
    chloe, _ = await nights.join(night.id, "Chloé")
    await nights.set_ratings(night.id, ben.id, ben_token, [(20, 4.0), (10, 2.0)])
    await nights.set_ratings(night.id, ana.id, ana_token, [(30, 5.0)])
    await nights.set_aside(night.id, ana.id, ana_token, 50)
    listed = await nights.recommendations(night.id, n=7, strategy="average")
    assert listed.recommendations == "the group's list"
    assert [m.id for m in listed.night.members] == [ana.id, ben.id, chloe.id]
    assert group.asked == [
        {
            "members": [[(30, 5.0)], [(10, 2.0), (20, 4.0)], []],
            "n": 7,
            "strategy": "average",
            "exclude": {50},
        }
    ]


async def test_unknown_nights_are_not_found(nights: Nights) -> None:
    for call in (
        nights.get("nope"),
        nights.version("nope"),
        nights.join("nope", "Ana"),
        nights.recommendations("nope"),
    ):
        with pytest.raises(NightNotFound):
            await call


async def test_a_night_idle_past_the_ttl_is_gone_and_activity_keeps_it(
    nights: Nights, clock: Clock
) -> None:
    idle = await nights.create("192.0.2.1")
    busy = await nights.create("192.0.2.1")
    ana, token = await nights.join(busy.id, "Ana")
    clock.advance(hours=47)
    await nights.rate(busy.id, ana.id, token, 10, 4.0)
    clock.advance(hours=2)
    # Past its expiry a night is not found even before the sweep deletes it.
    with pytest.raises(NightNotFound):
        await nights.get(idle.id)
    assert await nights.expire() == 1
    assert (await nights.get(busy.id)).members[0].ratings == ((10, 4.0),)
    clock.advance(hours=47)
    assert await nights.expire() == 1
    with pytest.raises(NightNotFound):
        await nights.get(busy.id)


async def test_starts_are_limited_per_address_and_hour(nights: Nights, clock: Clock) -> None:
    for _ in range(3):
        await nights.create("192.0.2.1")
    with pytest.raises(TooManyNights) as raised:
        await nights.create("192.0.2.1")
    assert "3" in str(raised.value) and raised.value.retry_after > 0
    # Another address has its own count; the next hour starts afresh.
    await nights.create("192.0.2.2")
    clock.advance(hours=1)
    await nights.create("192.0.2.1")


async def test_the_start_limit_holds_for_starts_at_once(nights: Nights) -> None:
    tries = await asyncio.gather(
        *(nights.create("198.51.100.7") for _ in range(8)), return_exceptions=True
    )
    assert sum(isinstance(t, Night) for t in tries) == 3
    assert sum(isinstance(t, TooManyNights) for t in tries) == 5


async def test_two_members_writing_at_once_both_keep_their_changes(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    ana, ana_token = await nights.join(night.id, "Ana")
    ben, ben_token = await nights.join(night.id, "Ben")
    films = [10, 20, 30, 40, 50, 60]
    await asyncio.gather(
        *(nights.rate(night.id, ana.id, ana_token, film, 4.0) for film in films),
        *(nights.rate(night.id, ben.id, ben_token, film, 2.0) for film in films),
    )
    found = await nights.get(night.id)
    assert found.members[0].ratings == tuple((film, 4.0) for film in films)
    assert found.members[1].ratings == tuple((film, 2.0) for film in films)


async def test_a_stopped_database_is_unavailable(nights: Nights) -> None:
    night = await nights.create("192.0.2.1")
    await nights.database.stop()
    with pytest.raises(DatabaseUnavailable):
        await nights.get(night.id)


async def test_the_background_sweep_deletes_idle_nights_by_itself(
    settings: Settings, database_url: str, group: Group, clock: Clock
) -> None:
    # NIGHT_TTL of 2 s: the sweep runs every tenth of it.
    nights = Nights(settings.replace(night_ttl=2.0), Database(database_url), group, clock=clock)
    nights.start()
    try:
        night = await nights.create("192.0.2.1")
        clock.advance(seconds=3)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with nights.database.transaction() as connection:
                left = (
                    await connection.execute(select(func.count()).select_from(nights_table))
                ).scalar_one()
            if left == 0:
                break
            assert asyncio.get_running_loop().time() < deadline, "the sweep never ran"
            await asyncio.sleep(0.05)
        with pytest.raises(NightNotFound):
            await nights.get(night.id)
    finally:
        await nights.stop()
