"""The tables of every migration, as SQLAlchemy Core metadata: a table per concern.

Times are UTC, stored without a zone (SQLite has no zoned type) and read back zoned. Member
tokens are kept only as SHA-256 digests; the night and member ids are random (see
app/engine/nights.py). Rows of a night go with it: its members, their ratings and the films
set aside cascade on delete.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)

# Constraint names fixed by convention, so that a later migration can name what it alters.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID_LENGTH = 32
"""Room for an id: 128 random bits are 22 characters of URL-safe base64."""
DIGEST_LENGTH = 64
"""A SHA-256 digest in hexadecimal."""
NAME_LENGTH = 40
"""Longest display name, in characters."""


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in UTC: stored as a naive UTC timestamp, read back with its zone."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """An aware datetime as naive UTC (naive ones are taken to be UTC already)."""
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """The stored naive UTC timestamp, zoned."""
        return None if value is None else value.replace(tzinfo=UTC)


nights = Table(
    "nights",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Moves forward on every change: the night lives NIGHT_TTL past its last activity.
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("version", Integer, nullable=False, default=1),
    Column("picked", Integer, nullable=True),
)

members = Table(
    "members",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column(
        "night_id",
        String(ID_LENGTH),
        ForeignKey("nights.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Joining order within the night: 1, 2, 3, ...
    Column("position", Integer, nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("token_sha256", String(DIGEST_LENGTH), nullable=False),
    Column("joined_at", UTCDateTime(), nullable=False),
    Index("ix_members_night_position", "night_id", "position", unique=True),
)

member_ratings = Table(
    "member_ratings",
    metadata,
    Column(
        "member_id",
        String(ID_LENGTH),
        ForeignKey("members.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("movie_id", Integer, primary_key=True),
    Column("rating", Float, nullable=False),
)

set_aside = Table(
    "set_aside",
    metadata,
    Column(
        "night_id",
        String(ID_LENGTH),
        ForeignKey("nights.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("movie_id", Integer, primary_key=True),
    Column("set_at", UTCDateTime(), nullable=False),
)

night_starts = Table(
    "night_starts",
    metadata,
    # SHA-256 of the client's address: the limit needs to count, not to know who.
    Column("client_sha256", String(DIGEST_LENGTH), primary_key=True),
    Column("hour", UTCDateTime(), primary_key=True),
    Column("count", Integer, nullable=False),
)
"""Nights started per client address and clock hour (NIGHT_CREATE_LIMIT)."""

profiles = Table(
    "profiles",
    metadata,
    # The private link's token is never stored, only its SHA-256.
    Column("token_sha256", String(DIGEST_LENGTH), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # Moves forward on every read or change: a profile lives PROFILE_TTL past its last use.
    Column("used_at", UTCDateTime(), nullable=False, index=True),
)
"""Saved profiles (/me/<token>), revision 0002_profiles."""

profile_ratings = Table(
    "profile_ratings",
    metadata,
    Column(
        "profile_sha256",
        String(DIGEST_LENGTH),
        ForeignKey("profiles.token_sha256", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("movie_id", Integer, primary_key=True),
    Column("rating", Float, nullable=False),
)
"""A saved profile's ratings, one row a film."""
