"""Strict parsing of what requests carry: ids, list sizes, algorithm, filters, ratings.

Each parser raises InvalidInput naming the field and saying what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.engine import DEFAULT_K, DEFAULT_N, MAX_K, MAX_N, MAX_RATINGS, Filters, VisitRequest

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


def parse_user_id(raw: str | None, field: str = "user_id") -> int:
    """A user id as an integer; anything that is not a whole number is refused."""
    text = (raw or "").strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidInput(field, "Please enter a valid user ID.")
    return int(text)


def parse_movie_id(raw: str | None, field: str) -> int:
    """A movie id as an integer; anything that is not a whole number is refused."""
    text = (raw or "").strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidInput(field, "A film is named by its movie id, a whole number.")
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
    """An algorithm name, lower case; empty means the default (None).

    Whether it names an algorithm is the Service's to say (UnknownAlgorithm).
    """
    text = (raw or "").strip().lower()
    return text or None


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


# A year range a person might type; a film's year is compared, not validated, against it.
EARLIEST_YEAR = 1870
LATEST_YEAR = 2100
_RATING_PAIR = re.compile(r"([0-9]{1,9}):([0-9]{1,2}(?:\.[0-9]{1,2})?)", re.ASCII)


def parse_year(raw: str | None, field: str, label: str) -> int | None:
    """A year from EARLIEST_YEAR to LATEST_YEAR; empty means no bound."""
    text = (raw or "").strip()
    if not text:
        return None
    if not _INTEGER.fullmatch(text) or not EARLIEST_YEAR <= int(text) <= LATEST_YEAR:
        raise InvalidInput(field, f"{label} must be a year from {EARLIEST_YEAR} to {LATEST_YEAR}.")
    return int(text)


def parse_filters(args: Mapping[str, str], genres: Sequence[str]) -> Filters:
    """Genre (one of `genres`) and year range from a query string."""
    genre = (args.get("genre") or "").strip() or None
    if genre is not None and genre not in genres:
        raise InvalidInput("genre", "Unknown genre; choose one from the list.")
    year_from = parse_year(args.get("year_from"), "year_from", "From")
    year_to = parse_year(args.get("year_to"), "year_to", "To")
    if year_from is not None and year_to is not None and year_from > year_to:
        raise InvalidInput("year_from", "The first year must not be after the second.")
    return Filters(genre, year_from, year_to)


def parse_rating_list(raw: str | None) -> list[tuple[int, float]]:
    """Ratings kept in the URL, "1:4.5,296:5"; their values are checked by the engine."""
    text = (raw or "").strip()
    if not text:
        return []
    items = text.split(",")
    if len(items) > MAX_RATINGS:
        raise InvalidInput("r", f"At most {MAX_RATINGS} ratings can be kept.")
    pairs = []
    for item in items:
        match = _RATING_PAIR.fullmatch(item.strip())
        if not match:
            raise InvalidInput("r", "The ratings in the address are not in the form 1:4.5,296:5.")
        pairs.append((int(match[1]), float(match[2])))
    return pairs


def parse_rating_pair(raw: str | None, field: str) -> tuple[int, float]:
    """One "movie_id:rating" pair, as a star control sends it."""
    match = _RATING_PAIR.fullmatch((raw or "").strip())
    if not match:
        raise InvalidInput(field, "A rating is sent as movie_id:rating, for example 296:4.5.")
    return int(match[1]), float(match[2])


def parse_visit(args: Mapping[str, str], genres: Sequence[str]) -> VisitRequest:
    """The rating page's state (ratings, list settings, filters) and the change it asks for."""
    return VisitRequest(
        ratings=parse_rating_list(args.get("r")),
        from_user=parse_user_id(args["from_user"], "from_user") if args.get("from_user") else None,
        set=parse_rating_pair(args["set"], "set") if args.get("set") else None,
        remove=parse_movie_id(args["remove"], "remove") if args.get("remove") else None,
        n=parse_n(args.get("n")),
        k=parse_k(args.get("k")),
        algorithm=parse_algorithm(args.get("algorithm")),
        filters=parse_filters(args, genres),
    )
