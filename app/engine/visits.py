"""The rating page's visit: a visitor's ratings changed one step, checked, and recommended from.

Pure of the engine's state: it is handed the served model and how to recommend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.data.catalogue import Movie
from app.engine.answers import Recommendations
from app.engine.model import Model
from app.engine.queries import DEFAULT_K, DEFAULT_N, NO_FILTERS, Filters, InvalidRatings, Ratings
from app.engine.status import AlgorithmUnavailable, UnknownAlgorithm
from app.recommender import UnknownUser

STARTERS = 24
"""Well-known films the rating page offers before anything is searched."""
FROM_USER_LIMIT = 100
"""Most of a MovieLens user's ratings a visitor starts from (their highest)."""


@dataclass(frozen=True)
class VisitRequest:
    """What the rating page asks: the ratings kept so far and one change to them.

    `from_user` replaces the ratings with a MovieLens user's; `set` rates a film (or changes
    its rating); `remove` drops one. They apply in that order.
    """

    ratings: Sequence[tuple[int, float]] = ()
    from_user: int | None = None
    set: tuple[int, float] | None = None
    remove: int | None = None
    n: int = DEFAULT_N
    k: int = DEFAULT_K
    algorithm: str | None = None
    filters: Filters = NO_FILTERS


@dataclass(frozen=True)
class Visit:
    """Everything the rating page shows; `error` is what stopped it going further, if anything."""

    ratings: Ratings = field(default_factory=lambda: Ratings((), ()))
    rated: list[tuple[Movie, float]] = field(default_factory=list)
    starters: list[Movie] = field(default_factory=list)
    results: Recommendations | None = None
    error: Exception | None = None


VISIT_ERRORS = (InvalidRatings, UnknownUser, UnknownAlgorithm, AlgorithmUnavailable)
"""What a visit shows beside its ratings rather than failing."""


def make_visit(
    model: Model, asked: VisitRequest, recommend: Callable[[Ratings], Recommendations]
) -> Visit:
    """Apply the change `asked`, check the ratings, and recommend from them (blocking)."""
    starters = model.starter_movies(STARTERS)
    try:
        pairs = list(asked.ratings)
        if asked.from_user is not None:
            pairs = model.user_ratings(asked.from_user, FROM_USER_LIMIT)
        if asked.set is not None:
            movie_id = asked.set[0]
            pairs = [*(p for p in pairs if p[0] != movie_id), asked.set]
        if asked.remove is not None:
            pairs = [p for p in pairs if p[0] != asked.remove]
        ratings = model.check_ratings(pairs)
    except VISIT_ERRORS as exc:
        return Visit(starters=starters, error=exc)
    rated = list(zip(model.movies(ratings.movie_ids), ratings.values, strict=True))
    if not len(ratings):
        return Visit(ratings, rated, starters)
    try:
        results = recommend(ratings)
    except VISIT_ERRORS as exc:
        return Visit(ratings, rated, starters, error=exc)
    return Visit(ratings, rated, starters, results)
