"""The rules of a movie night: its limits, the errors that break them, names, ids and tokens,
and what a night needs of the Service (`GroupRecommender`).

Ids and tokens are 128 random bits from `secrets`; only a token's SHA-256 is stored.
app/engine/nights.py applies these rules and re-exports every name here.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Collection, Sequence
from typing import Protocol

from app.engine.group import GroupRecommendations
from app.engine.queries import Ratings

MAX_MEMBERS = 12
MAX_NIGHT_RATINGS = 500
"""Most films one member of a night may rate."""
DEFAULT_NIGHT_N = 10
"""Films in a night's list unless asked otherwise."""
MAX_NAME = 40
"""Longest display name, in characters, after trimming."""


class NightError(Exception):
    """A request about a night that cannot be done; `str()` says why, for anyone to read."""


class NightNotFound(NightError):
    """No such night: it never existed, or it expired."""

    def __init__(self) -> None:
        super().__init__("There is no such movie night; it may have ended. Start a new one.")


class NightFull(NightError):
    """The night has MAX_MEMBERS members already."""

    def __init__(self) -> None:
        super().__init__(f"This movie night is full: it has {MAX_MEMBERS} members already.")


class InvalidName(NightError, ValueError):
    """A display name that is empty or too long."""


class Forbidden(NightError):
    """The token is not this member's: nobody may change another member's ratings."""

    def __init__(self) -> None:
        super().__init__("Only the member themselves can do this; the token is not theirs.")


class TooManyRatings(NightError):
    """A member would have more than MAX_NIGHT_RATINGS ratings."""

    def __init__(self) -> None:
        super().__init__(f"A member of a movie night can rate at most {MAX_NIGHT_RATINGS} films.")


class TooManyNights(NightError):
    """This client address started NIGHT_CREATE_LIMIT nights in the last hour already."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"At most {limit} movie nights can be started in an hour from one address; "
            f"try again in {max(1, retry_after // 60)} minutes."
        )
        self.retry_after = retry_after


def new_secret() -> str:
    """128 random bits, URL-safe base64 (22 characters)."""
    return secrets.token_urlsafe(16)


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256, in hexadecimal."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def highest_rated(
    ratings: Sequence[tuple[int, float]], most: int = MAX_NIGHT_RATINGS
) -> tuple[tuple[int, float], ...]:
    """At most `most` of the ratings: the highest rated, in the order they came.

    What a member brings (a history, a saved profile) may hold more films than a night
    keeps; their favourites say the most of what they would watch tonight. Of films rated
    alike, the earlier are kept.
    """
    if len(ratings) <= most:
        return tuple(ratings)
    kept = sorted(sorted(range(len(ratings)), key=lambda i: -ratings[i][1])[:most])
    return tuple(ratings[i] for i in kept)


def check_name(name: str) -> str:
    """The display name without the spaces around it; InvalidName if empty, over MAX_NAME
    characters, or holding control characters (which no one can read or type)."""
    trimmed = name.strip()
    if not trimmed:
        raise InvalidName("Please give a name for the others to see.")
    if len(trimmed) > MAX_NAME:
        raise InvalidName(f"A name can have at most {MAX_NAME} characters.")
    if any(unicodedata.category(character) in ("Cc", "Cs") for character in trimmed):
        raise InvalidName("A name cannot hold control characters such as line breaks.")
    return trimmed


class GroupRecommender(Protocol):
    """What Nights needs from the Service: the catalogue's check and the group's list."""

    async def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        """Validate ratings against the catalogue (InvalidRatings)."""
        ...

    async def recommend_for_group(
        self,
        members: Sequence[Sequence[tuple[int, float]]],
        n: int = DEFAULT_NIGHT_N,
        strategy: str | None = None,
        exclude: Collection[int] = (),
    ) -> GroupRecommendations:
        """One list for the members' ratings, in member order."""
        ...
