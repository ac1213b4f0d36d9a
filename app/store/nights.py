"""The SQL of movie nights: each function is one step inside a caller's transaction.

The rules (limits, tokens, who may change what) are app/engine/nights.py's; here is only how
a night, its members, their ratings and the films set aside are read and written. A change
starts with `touch()`, which moves the night's version and expiry on and, in doing so, locks
its row until the transaction ends: changes to one night are serialised (on SQLite, every
write is), so counts checked after it stay true until the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.schema import member_ratings, members, night_starts, nights, set_aside


@dataclass(frozen=True)
class StoredMember:
    """A member's row and ratings, as stored."""

    id: str
    name: str
    ratings: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class StoredNight:
    """A night's row with its members (in joining order) and the films set aside."""

    id: str
    created_at: datetime
    expires_at: datetime
    version: int
    picked: int | None
    members: tuple[StoredMember, ...]
    set_aside: tuple[int, ...]


async def count_start(connection: AsyncConnection, client_sha256: str, hour: datetime) -> int:
    """Count one more night started by this client in this hour; the count so far, this one in.

    One statement (an upsert), so starts in different workers or replicas at the same moment
    are all counted.
    """
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(night_starts).values(client_sha256=client_sha256, hour=hour, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[night_starts.c.client_sha256, night_starts.c.hour],
        set_={"count": night_starts.c.count + 1},
    ).returning(night_starts.c.count)
    return int((await connection.execute(statement)).scalar_one())


async def insert_night(
    connection: AsyncConnection, night_id: str, created_at: datetime, expires_at: datetime
) -> None:
    """Store a new night, with no members, at version 1."""
    await connection.execute(
        insert(nights).values(
            id=night_id, created_at=created_at, expires_at=expires_at, version=1, picked=None
        )
    )


async def touch(
    connection: AsyncConnection, night_id: str, now: datetime, expires_at: datetime
) -> bool:
    """Bump the night's version and expiry, locking it; False if it is unknown or expired."""
    done = await connection.execute(
        update(nights)
        .where(nights.c.id == night_id, nights.c.expires_at > now)
        .values(version=nights.c.version + 1, expires_at=expires_at)
    )
    return done.rowcount == 1


async def version(connection: AsyncConnection, night_id: str, now: datetime) -> int | None:
    """The night's version, or None if it is unknown or expired."""
    found = await connection.execute(
        select(nights.c.version).where(nights.c.id == night_id, nights.c.expires_at > now)
    )
    value = found.scalar_one_or_none()
    return None if value is None else int(value)


async def load(connection: AsyncConnection, night_id: str, now: datetime) -> StoredNight | None:
    """The whole night, or None if it is unknown or expired."""
    row = (
        await connection.execute(
            select(nights).where(nights.c.id == night_id, nights.c.expires_at > now)
        )
    ).one_or_none()
    if row is None:
        return None
    member_rows = (
        await connection.execute(
            select(members.c.id, members.c.name)
            .where(members.c.night_id == night_id)
            .order_by(members.c.position)
        )
    ).all()
    rating_rows = (
        await connection.execute(
            select(member_ratings.c.member_id, member_ratings.c.movie_id, member_ratings.c.rating)
            .join(members, members.c.id == member_ratings.c.member_id)
            .where(members.c.night_id == night_id)
            .order_by(member_ratings.c.member_id, member_ratings.c.movie_id)
        )
    ).all()
    ratings: dict[str, list[tuple[int, float]]] = {}
    for member_id, movie_id, rating in rating_rows:
        ratings.setdefault(member_id, []).append((int(movie_id), float(rating)))
    aside = (
        await connection.execute(
            select(set_aside.c.movie_id)
            .where(set_aside.c.night_id == night_id)
            .order_by(set_aside.c.set_at, set_aside.c.movie_id)
        )
    ).scalars()
    return StoredNight(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        version=int(row.version),
        picked=row.picked,
        members=tuple(
            StoredMember(member_id, name, tuple(ratings.get(member_id, ())))
            for member_id, name in member_rows
        ),
        set_aside=tuple(int(movie_id) for movie_id in aside),
    )


async def member_count(connection: AsyncConnection, night_id: str) -> int:
    """How many members the night has."""
    found = await connection.execute(
        select(func.count()).select_from(members).where(members.c.night_id == night_id)
    )
    return int(found.scalar_one())


async def add_member(
    connection: AsyncConnection,
    night_id: str,
    member_id: str,
    name: str,
    token_sha256: str,
    joined_at: datetime,
) -> None:
    """Add a member after the last one (call after touch(), which serialises joins)."""
    last = await connection.execute(
        select(func.max(members.c.position)).where(members.c.night_id == night_id)
    )
    position = int(last.scalar_one() or 0) + 1
    await connection.execute(
        insert(members).values(
            id=member_id,
            night_id=night_id,
            position=position,
            name=name,
            token_sha256=token_sha256,
            joined_at=joined_at,
        )
    )


async def token_of(connection: AsyncConnection, night_id: str, member_id: str) -> str | None:
    """The SHA-256 of a member's token, or None if the night has no such member."""
    found = await connection.execute(
        select(members.c.token_sha256).where(
            members.c.id == member_id, members.c.night_id == night_id
        )
    )
    return found.scalar_one_or_none()


async def member(connection: AsyncConnection, member_id: str) -> StoredMember:
    """One member (who must exist) with their ratings."""
    name = (
        await connection.execute(select(members.c.name).where(members.c.id == member_id))
    ).scalar_one()
    rows = (
        await connection.execute(
            select(member_ratings.c.movie_id, member_ratings.c.rating)
            .where(member_ratings.c.member_id == member_id)
            .order_by(member_ratings.c.movie_id)
        )
    ).all()
    return StoredMember(member_id, name, tuple((int(m), float(r)) for m, r in rows))


async def replace_ratings(
    connection: AsyncConnection, member_id: str, pairs: Sequence[tuple[int, float]]
) -> None:
    """Replace all of a member's ratings with `pairs` (distinct films)."""
    await connection.execute(delete(member_ratings).where(member_ratings.c.member_id == member_id))
    if pairs:
        await connection.execute(
            insert(member_ratings),
            [{"member_id": member_id, "movie_id": m, "rating": r} for m, r in pairs],
        )


async def set_rating(
    connection: AsyncConnection, member_id: str, movie_id: int, rating: float | None
) -> None:
    """Rate one film (replacing an earlier rating of it), or remove its rating (None)."""
    await connection.execute(
        delete(member_ratings).where(
            member_ratings.c.member_id == member_id, member_ratings.c.movie_id == movie_id
        )
    )
    if rating is not None:
        await connection.execute(
            insert(member_ratings).values(member_id=member_id, movie_id=movie_id, rating=rating)
        )


async def rating_count(connection: AsyncConnection, member_id: str) -> int:
    """How many films a member has rated."""
    found = await connection.execute(
        select(func.count())
        .select_from(member_ratings)
        .where(member_ratings.c.member_id == member_id)
    )
    return int(found.scalar_one())


async def remove_member(connection: AsyncConnection, member_id: str) -> None:
    """Remove a member and their ratings."""
    await connection.execute(delete(member_ratings).where(member_ratings.c.member_id == member_id))
    await connection.execute(delete(members).where(members.c.id == member_id))


async def add_set_aside(
    connection: AsyncConnection, night_id: str, movie_id: int, now: datetime
) -> None:
    """Set a film aside for the night (again: no change)."""
    already = await connection.execute(
        select(set_aside.c.movie_id).where(
            set_aside.c.night_id == night_id, set_aside.c.movie_id == movie_id
        )
    )
    if already.first() is None:
        await connection.execute(
            insert(set_aside).values(night_id=night_id, movie_id=movie_id, set_at=now)
        )


async def set_pick(connection: AsyncConnection, night_id: str, movie_id: int | None) -> None:
    """Mark the night's pick, or clear it (None)."""
    await connection.execute(update(nights).where(nights.c.id == night_id).values(picked=movie_id))


async def delete_expired(connection: AsyncConnection, now: datetime) -> int:
    """Delete the nights past their expiry, with everything in them; how many went."""
    expired = select(nights.c.id).where(nights.c.expires_at <= now).scalar_subquery()
    gone = select(members.c.id).where(members.c.night_id.in_(expired)).scalar_subquery()
    # Explicitly, child rows first: foreign keys cascade too, but need not be enforced.
    await connection.execute(delete(member_ratings).where(member_ratings.c.member_id.in_(gone)))
    await connection.execute(delete(members).where(members.c.night_id.in_(expired)))
    await connection.execute(delete(set_aside).where(set_aside.c.night_id.in_(expired)))
    done = await connection.execute(delete(nights).where(nights.c.expires_at <= now))
    return int(done.rowcount)


async def forget_starts(connection: AsyncConnection, before: datetime) -> None:
    """Drop the counts of nights started in hours before `before`."""
    await connection.execute(delete(night_starts).where(night_starts.c.hour < before))
