"""JSON in and out: request bodies parsed strictly, answers turned into plain values, both
without a Python call per value that does not need one.

A 5,000-rating POST is 5,000 objects: a hook on every object (to turn 10.0 into 10, or to
name an over-long movie_id) cost more than the recommendation itself. Only numbers go
through Python here, and only the ratings' movie_ids are normalised, where they are read.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from werkzeug.exceptions import UnsupportedMediaType

from app.engine import MAX_RATINGS
from app.web.params import InvalidInput

_MAX_DIGITS = 20
"""No film id or rating has more digits than this; a longer number is not converted at all
(CPython refuses past 4,300 digits anyway, and a message would echo every one of them)."""


class _TooLong(float):
    """A whole number too long to use: infinite, so a rating is off the scale."""

    digits: int


def _whole_number(text: str) -> int | float:
    if len(text) <= _MAX_DIGITS:
        return int(text)
    number = _TooLong("-inf" if text.startswith("-") else "inf")
    number.digits = len(text.lstrip("-"))
    return number


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_body(mimetype: str, data: bytes | str) -> object:
    """The request body as JSON: 415 unless sent as application/json, 400 with the reason."""
    if mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON, with Content-Type: application/json.")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InvalidInput("body", "The body is not UTF-8 text, as JSON must be.") from None
    try:
        return json.loads(text, parse_int=_whole_number, parse_constant=_not_json)
    except RecursionError:
        # json.loads recurses once per level: a body of a few KiB of "[" reaches the limit.
        raise InvalidInput(
            "body", "The body is nested too deeply to be a list of ratings."
        ) from None
    except ValueError:
        raise InvalidInput("body", "The body is not valid JSON.") from None


def json_movie_id(value: object) -> object:
    """A movie_id as sent, with 10.0 read as 10 (JSON has one kind of number, and JSON
    Schema's "integer" says so); InvalidInput for a number too long to name a film."""
    if isinstance(value, _TooLong):
        raise InvalidInput("ratings", f"A movie_id of {value.digits:,} digits names no film.")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


_RATING_KEYS = {"movie_id", "rating"}


def parse_ratings_json(body: object) -> list[tuple[int, float]]:
    """The API's {"ratings": [{"movie_id": 1, "rating": 4.5}, ...]}, checked for shape only
    (the engine checks the values)."""
    if not isinstance(body, dict) or not isinstance(body.get("ratings"), list):
        raise InvalidInput("ratings", 'The body must be a JSON object with a "ratings" list.')
    ratings = body["ratings"]
    if len(ratings) > MAX_RATINGS:
        raise InvalidInput("ratings", f"At most {MAX_RATINGS} ratings can be sent at once.")
    pairs = []
    for index, item in enumerate(ratings):
        if type(item) is not dict or item.keys() != _RATING_KEYS:
            raise InvalidInput(
                "ratings",
                f'ratings[{index}] must be an object with exactly "movie_id" and "rating".',
            )
        movie_id = item["movie_id"]
        if type(movie_id) is not int:
            movie_id = json_movie_id(movie_id)
        pairs.append((movie_id, item["rating"]))
    return pairs


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """A dataclass answer as dicts and lists, as `dataclasses.asdict` gives it for JSON.

    asdict deep-copies every string and number; an answer of ten films with three reasons
    each is some 300 values, and copying them was the largest cost of an answer served from
    a known user's precomputed list.
    """
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if kind in (tuple, list):
        return [plain(item) for item in value]
    if kind is dict:
        return {key: plain(item) for key, item in value.items()}
    return value
