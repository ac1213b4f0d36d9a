"""The SQL of saved profiles: each function is one step inside a caller's transaction.

The rules (token, size, expiry) are app/engine/profiles.py's; here a profile is found by its
token's SHA-256 and its ratings are read and replaced. Rows are deleted child first, since
foreign keys need not be enforced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.schema import profile_ratings, profiles


async def insert_profile(connection: AsyncConnection, token_sha256: str, now: datetime) -> None:
    """Store a new, empty profile."""
    await connection.execute(
        insert(profiles).values(token_sha256=token_sha256, created_at=now, used_at=now)
    )


async def touch(
    connection: AsyncConnection, token_sha256: str, now: datetime, alive_since: datetime
) -> bool:
    """Mark the profile used now; False if it is unknown or unused since before `alive_since`."""
    done = await connection.execute(
        update(profiles)
        .where(profiles.c.token_sha256 == token_sha256, profiles.c.used_at > alive_since)
        .values(used_at=now)
    )
    return done.rowcount == 1


async def ratings(connection: AsyncConnection, token_sha256: str) -> tuple[tuple[int, float], ...]:
    """The profile's ratings, by movie id."""
    rows = await connection.execute(
        select(profile_ratings.c.movie_id, profile_ratings.c.rating)
        .where(profile_ratings.c.profile_sha256 == token_sha256)
        .order_by(profile_ratings.c.movie_id)
    )
    return tuple((int(movie_id), float(rating)) for movie_id, rating in rows)


async def replace_ratings(
    connection: AsyncConnection, token_sha256: str, pairs: Sequence[tuple[int, float]]
) -> None:
    """Replace all of the profile's ratings with `pairs` (one rating a film)."""
    await connection.execute(
        delete(profile_ratings).where(profile_ratings.c.profile_sha256 == token_sha256)
    )
    if pairs:
        await connection.execute(
            insert(profile_ratings),
            [
                {"profile_sha256": token_sha256, "movie_id": movie_id, "rating": rating}
                for movie_id, rating in pairs
            ],
        )


async def delete_profile(connection: AsyncConnection, token_sha256: str) -> bool:
    """Delete the profile and its ratings; False if there was none."""
    await connection.execute(
        delete(profile_ratings).where(profile_ratings.c.profile_sha256 == token_sha256)
    )
    done = await connection.execute(delete(profiles).where(profiles.c.token_sha256 == token_sha256))
    return done.rowcount == 1


async def delete_unused(connection: AsyncConnection, since: datetime) -> int:
    """Delete the profiles unused since `since`, with their ratings; how many went."""
    unused = select(profiles.c.token_sha256).where(profiles.c.used_at <= since).scalar_subquery()
    await connection.execute(
        delete(profile_ratings).where(profile_ratings.c.profile_sha256.in_(unused))
    )
    done = await connection.execute(delete(profiles).where(profiles.c.used_at <= since))
    return int(done.rowcount)
