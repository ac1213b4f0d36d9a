"""What a request may ask for: list sizes, a visitor's own ratings, filters; checked here."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from app.data.catalogue import Catalogue
from app.recommender import RatingMatrix

MAX_N = 50
"""Most films one list may hold."""
MAX_K = 100
"""Most similar users one list may be computed from."""
DEFAULT_N = 5
DEFAULT_K = 5
MAX_RATINGS = 10_000
"""Most ratings a visitor may send at once: a whole history (ml-latest-small's most is 2,698).

Measured on ml-latest-small: 9,000 ratings (300 KiB of JSON) are checked and ranked in 0.1 s."""
LOWEST_RATING = 0.5
HIGHEST_RATING = 5.0


class InvalidRatings(ValueError):
    """Ratings that cannot be used; the message names the first problem and where it is."""


@dataclass(frozen=True)
class Ratings:
    """A visitor's ratings: distinct movie ids (ascending) with half-star values."""

    movie_ids: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def checked(cls, pairs: Iterable[tuple[int, float]], catalogue: Catalogue) -> Ratings:
        """Validate (movie_id, rating) pairs against the catalogue; InvalidRatings if bad."""
        pairs = list(pairs)
        if len(pairs) > MAX_RATINGS:
            raise InvalidRatings(f"At most {MAX_RATINGS} ratings can be sent at once.")
        valid = _all_valid(pairs, catalogue)
        if valid is not None:
            return valid
        # Something is wrong: find the first problem, one pair at a time, to name it.
        seen: dict[int, float] = {}
        for index, (movie_id, rating) in enumerate(pairs):
            where = f"ratings[{index}]"
            if not isinstance(movie_id, int) or isinstance(movie_id, bool):
                raise InvalidRatings(f"{where}.movie_id must be a whole number.")
            if catalogue.position(movie_id) is None:
                raise InvalidRatings(f"{where}.movie_id: there is no film with id {movie_id}.")
            if not _is_half_star(rating):
                raise InvalidRatings(
                    f"{where}.rating must be from {LOWEST_RATING} to {HIGHEST_RATING} "
                    "in steps of 0.5."
                )
            if movie_id in seen:
                raise InvalidRatings(f"{where}: film {movie_id} is rated twice.")
            seen[movie_id] = float(rating)
        ordered = sorted(seen.items())
        return cls(tuple(m for m, _ in ordered), tuple(r for _, r in ordered))

    def __len__(self) -> int:
        return len(self.movie_ids)

    def pairs(self) -> list[tuple[int, float]]:
        """(movie_id, rating) for each film, in id order."""
        return list(zip(self.movie_ids, self.values, strict=True))

    def as_text(self) -> str:
        """The compact form kept in URLs: "1:4.5,296:5"."""
        return ",".join(
            f"{m}:{_short(r)}" for m, r in zip(self.movie_ids, self.values, strict=True)
        )

    def rating_of(self, movie_id: int) -> float | None:
        """The rating given to a film, if any."""
        return dict(self.pairs()).get(movie_id)


@dataclass(frozen=True)
class Filters:
    """Which films a list may contain: one genre, and a range of release years."""

    genre: str | None = None
    year_from: int | None = None
    year_to: int | None = None

    @property
    def active(self) -> bool:
        """True if anything is filtered out."""
        return self.genre is not None or self.year_from is not None or self.year_to is not None

    def allowed(self, items: ItemFacts) -> np.ndarray:
        """For every matrix item, whether its film passes (films without a year fail a range)."""
        allowed = np.ones(len(items.years), dtype=bool)
        if self.genre is not None:
            allowed &= items.genre_mask(self.genre)
        if self.year_from is not None:
            allowed &= items.years >= self.year_from
        if self.year_to is not None:
            allowed &= (items.years >= 0) & (items.years <= self.year_to)
        return allowed


@dataclass(frozen=True, eq=False)
class ItemFacts:
    """Each matrix item's release year (-1 if unknown) and genres, for filtering."""

    years: np.ndarray
    genres: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, matrix: RatingMatrix, catalogue: Catalogue) -> ItemFacts:
        """Look every item's film up once."""
        years = np.full(matrix.n_items, -1, dtype=np.int64)
        genres: list[frozenset[str]] = [frozenset()] * matrix.n_items
        for item, movie_id in enumerate(matrix.item_ids.tolist()):
            movie = catalogue.get(movie_id)
            if movie is not None:
                years[item] = -1 if movie.year is None else movie.year
                genres[item] = frozenset(movie.genres)
        return cls(years, tuple(genres))

    def genre_mask(self, genre: str) -> np.ndarray:
        """Which items' films have this genre."""
        return np.fromiter((genre in g for g in self.genres), dtype=bool, count=len(self.genres))


def _all_valid(pairs: list[tuple[int, float]], catalogue: Catalogue) -> Ratings | None:
    """The Ratings when every pair is valid, checked as arrays; None if any is not.

    A whole history (10,000 ratings) checked one pair at a time took about 30 ms.
    """
    # Exact types: bools, NumPy numbers and the web layer's stand-ins go the slow way.
    if not all(type(m) is int and type(r) in (int, float) for m, r in pairs):
        return None
    try:
        movie_ids = np.array([m for m, _ in pairs], dtype=np.int64)
        values = np.array([r for _, r in pairs], dtype=np.float64)
    except OverflowError:  # an id beyond 64 bits, or a rating beyond a float
        return None
    known = catalogue.movie_ids
    found = np.minimum(known.searchsorted(movie_ids), max(len(known) - 1, 0))
    if len(known) == 0 or not np.array_equal(known[found], movie_ids):
        return None
    doubled = values * 2
    halves = doubled == np.round(doubled)
    on_scale = (values >= LOWEST_RATING) & (values <= HIGHEST_RATING) & halves
    order = np.argsort(movie_ids, kind="stable")
    ordered = movie_ids[order]
    if not on_scale.all() or np.any(ordered[1:] == ordered[:-1]):
        return None
    return Ratings(tuple(ordered.tolist()), tuple(values[order].tolist()))


def _is_half_star(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float is off the scale anyway
        return False
    return (
        math.isfinite(number)
        and LOWEST_RATING <= number <= HIGHEST_RATING
        and (number * 2).is_integer()
    )


def _short(rating: float) -> str:
    return str(int(rating)) if rating.is_integer() else str(rating)


NO_FILTERS = Filters()
