"""Strict parsing of the user id, n and k from query strings and paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.recommender import ALGORITHMS
from app.service import MAX_K, MAX_N

DEFAULT_N = 5
DEFAULT_K = 5
# ASCII digits only: str.isdigit() would also accept "٣" or "²".
_INTEGER = re.compile(r"[+-]?[0-9]{1,40}", re.ASCII)


class InvalidInput(ValueError):
    """A field has a value we cannot use; `field` names it, the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Query:
    """A validated recommendation request."""

    user_id: int
    n: int = DEFAULT_N
    k: int = DEFAULT_K
    algorithm: str | None = None


def parse_user_id(raw: str | None) -> int:
    """A user id as an integer; anything that is not a whole number is refused."""
    text = (raw or "").strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidInput("user_id", "Please enter a valid user ID.")
    return int(text)


def parse_count(raw: str | None, field: str, label: str, default: int, highest: int) -> int:
    """A whole number from 1 to `highest`; empty means `default`."""
    text = (raw or "").strip()
    if not text:
        return default
    message = f"{label} must be a whole number from 1 to {highest}."
    if not _INTEGER.fullmatch(text):
        raise InvalidInput(field, message)
    value = int(text)
    if not 1 <= value <= highest:
        raise InvalidInput(field, message)
    return value


def parse_n(raw: str | None) -> int:
    """The number of recommendations."""
    return parse_count(raw, "n", "Number of recommendations", DEFAULT_N, MAX_N)


def parse_k(raw: str | None) -> int:
    """The number of similar users."""
    return parse_count(raw, "k", "Number of similar users", DEFAULT_K, MAX_K)


def parse_algorithm(raw: str | None) -> str | None:
    """An algorithm name from the registry; empty means the default (None)."""
    text = (raw or "").strip().lower()
    if not text:
        return None
    if text not in ALGORITHMS:
        raise InvalidInput(
            "algorithm", f"Unknown algorithm; choose one of {', '.join(ALGORITHMS)}."
        )
    return text


def parse_query(args: Mapping[str, str]) -> Query | None:
    """The request in `args`, or None when no user id was given at all."""
    if "user_id" not in args:
        return None
    user_id = parse_user_id(args.get("user_id"))
    return Query(
        user_id,
        parse_n(args.get("n")),
        parse_k(args.get("k")),
        parse_algorithm(args.get("algorithm")),
    )
