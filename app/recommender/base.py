"""What every algorithm shares: the estimator protocol, its answers, and top-n selection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

import numpy as np

from app.recommender.matrix import Profile, RatingMatrix

_EMPTY_ROWS = np.empty(0, dtype=np.int64)
_EMPTY_VALUES = np.empty(0, dtype=np.float64)


class NotFitted(RuntimeError):
    """The model was used before `fit()`."""


class TooLarge(MemoryError):
    """The algorithm cannot fit this matrix within the memory it is allowed; says how much."""


@dataclass(frozen=True)
class Ranking:
    """Recommended columns best first, their scores, and the neighbours behind them if any.

    `neighbours` (matrix rows) and `similarities` are filled by user-based algorithms, so
    the explanation can say who rated each film without computing similarities again.
    """

    items: np.ndarray
    scores: np.ndarray
    neighbours: np.ndarray = field(default_factory=lambda: _EMPTY_ROWS)
    similarities: np.ndarray = field(default_factory=lambda: _EMPTY_VALUES)


@dataclass(frozen=True)
class Reason:
    """One reason a film was recommended.

    `source="user"`: a similar user (`id` is their MovieLens user id) who gave the film
    `rating`. `source="movie"`: a film the person rated (`id` is its movie id, `rating`
    their rating of it) that is `similarity`-similar to the recommended one (for EASE, its
    learned item weight). `source="popular"`: the film itself (`id` is its movie id) is
    widely rated: `similarity` is the share of users who rated it, `rating` its mean rating.
    """

    source: Literal["user", "movie", "popular"]
    id: int
    similarity: float
    rating: float


class Algorithm(Protocol):
    """A recommender estimator: fit once on a RatingMatrix, then rank and explain any profile.

    `name` is the key used in URLs and the API; `label` what the page shows; `uses_k` says
    whether the per-request neighbourhood size `k` changes its answers; `supports_adhoc`
    whether it can rank an ad-hoc profile (row=None) from its ratings alone, without a refit.
    """

    name: str
    label: str
    uses_k: bool
    supports_adhoc: bool

    def fit(self, matrix: RatingMatrix) -> Self:
        """Learn from the matrix; raises TooLarge instead of exhausting memory."""
        ...

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best columns the profile has not rated, best first."""
        ...

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """Up to `limit` reasons for each ranked column, strongest first."""
        ...


def top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, best first; ties go to the lower index.

    Partial selection (partition) keeps this linear in len(values); every value equal to
    the cut-off joins the final sort, so ties at the boundary are resolved by index too.
    """
    count = min(count, len(values))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    if count < len(values):
        cutoff = np.partition(values, len(values) - count)[len(values) - count]
        chosen = np.flatnonzero(values >= cutoff)
    else:
        chosen = np.arange(len(values))
    # lexsort sorts by the last key first: value descending, then index ascending.
    order = np.lexsort((chosen, -values[chosen]))
    return chosen[order[:count]]


def unseen_top(scores: np.ndarray, seen: np.ndarray, count: int) -> np.ndarray:
    """`top()` over the columns not in `seen`, without copying the score array twice."""
    masked = scores.astype(np.float64, copy=True)
    masked[seen] = -np.inf
    best = top(masked, count)
    return best[np.isfinite(masked[best])]
