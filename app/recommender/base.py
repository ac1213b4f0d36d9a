"""What every algorithm shares: the estimator protocol, its answers, and top-n selection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self

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

    `kind="user"`: a similar user (`id` is their MovieLens user id) who gave the film
    `rating`. `kind="movie"`: a film the person rated (`id` is its movie id, `rating`
    their rating of it) that is `similarity`-similar to the recommended one (for EASE, its
    learned item weight). `kind="popular"`: the film itself (`id` is its movie id) is
    widely rated: `similarity` is the share of users who rated it, `rating` its mean rating.
    """

    kind: Literal["user", "movie", "popular"]
    id: int
    similarity: float
    rating: float


class Algorithm(Protocol):
    """A recommender estimator: fit once on a RatingMatrix, then rank and explain any profile.

    Every algorithm ranks ad-hoc profiles (row=None) from their ratings alone, without a
    refit. It also describes itself, so pages and the API need no knowledge of any one:
    `name` is the key used in URLs and the API; `label` what the page shows; `description`
    a sentence on how it works; `method` how a list was scored, with the fields
    {neighbours}, {subject} ("you" or "this user") and {subject_has}; `reason_measure` what
    a reason's `similarity` figure is; `uses_k` whether the per-request neighbourhood size
    `k` changes its answers.
    """

    name: str
    label: str
    description: str
    method: str
    reason_measure: str
    uses_k: bool

    def fit(self, matrix: RatingMatrix) -> Self:
        """Learn from the matrix; raises TooLarge instead of exhausting memory."""
        ...

    def params(self) -> dict[str, Any]:
        """The constructor arguments this instance was made with (they shape the fit)."""
        ...

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """What fit() learned beyond the matrix, as named arrays a snapshot can hold."""
        ...

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """Take the fitted state from `fitted_arrays()` output (mapped, not copied)."""
        ...

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best columns the profile has not rated, best first."""
        ...

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """Up to `limit` reasons for each ranked column, strongest first."""
        ...


# Elements sampled per round of top(): enough that a round rarely keeps more than a few
# hundred candidates, few enough that partitioning the sample costs microseconds.
_SAMPLE = 1024


def top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, best first; ties go to the lower index.

    Each round takes the count-th largest value s of a strided sample. At least `count`
    values are >= s, so the answer lies among the values above s plus, if those are too
    few, the lowest-indexed values equal to s. A round is two linear passes and never
    partitions the full array, whose many equal scores (zeros, half stars) make
    introselect slow; the few candidates left are sorted by value, then index.
    """
    count = min(count, len(values))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    chosen = np.arange(len(values))
    picked = values
    while len(chosen) > max(8 * count, _SAMPLE):
        sample = picked[:: len(chosen) // _SAMPLE]
        if count > len(sample):
            break
        cutoff = np.partition(sample, len(sample) - count)[len(sample) - count]
        above = picked > cutoff
        keep = np.flatnonzero(above)
        if len(keep) < count:
            level = np.flatnonzero(picked == cutoff)[: count - len(keep)]
            keep = np.sort(np.concatenate((keep, level)))
        if len(keep) == len(chosen):
            break
        chosen, picked = chosen[keep], picked[keep]
    # lexsort sorts by the last key first: value descending, then index ascending.
    order = np.lexsort((chosen, -picked))
    return chosen[order[:count]]


def unseen_top(scores: np.ndarray, seen: np.ndarray, count: int) -> np.ndarray:
    """`top()` over the columns not in `seen`, without copying the score array twice."""
    masked = scores.astype(np.float64, copy=True)
    masked[seen] = -np.inf
    best = top(masked, count)
    return best[np.isfinite(masked[best])]


def top_rows(values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `count` largest values and their columns, best first, as `top()` orders them.

    Ties go to the lower column, also at the cut: of the values equal to a row's count-th
    largest, the lowest-indexed are kept. Rows shorter than `count` give all they have.
    """
    rows, width = values.shape
    count = min(count, width)
    if count <= 0:
        return np.empty((rows, 0), dtype=np.int64), np.empty((rows, 0), dtype=values.dtype)
    cut = width - count
    threshold = np.partition(values, cut, axis=1)[:, cut, np.newaxis]
    above = values > threshold
    tied = values == threshold
    wanted = count - above.sum(axis=1, dtype=np.int32)
    kept = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= wanted[:, np.newaxis]))
    # Exactly `count` kept in every row, found row by row with their columns ascending.
    columns = np.nonzero(kept)[1].reshape(rows, count)
    scores = np.take_along_axis(values, columns, axis=1)
    # A stable sort of the negated scores keeps equal ones in column order.
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(scores, order, axis=1)


SMALL_SORT = 4096
"""Up to this many values, leading_rows sorts whole columns (a few NumPy calls, not eight)."""


def leading_rows(values: np.ndarray, limit: int) -> np.ndarray:
    """Each column's `limit` largest values' rows, largest first, ties to the lower row.

    The first `limit` rows of a stable argsort of -values down each column, without sorting
    whole columns (a 22,000-rating profile's reasons sorted 22,000 rows per film shown): only
    the values at or above each column's limit-th largest are sorted.
    """
    rows, columns = values.shape
    limit = min(limit, rows)
    if limit <= 0 or columns == 0:
        return np.empty((limit if limit > 0 else 0, columns), dtype=np.int64)
    if values.size <= SMALL_SORT:
        # A short profile's table: one stable sort is cheaper than the steps below.
        return np.argsort(-values, axis=0, kind="stable")[:limit]
    threshold = np.partition(values, rows - limit, axis=0)[rows - limit]
    # Candidates column by column, each column's rows ascending.
    column, row = np.nonzero((values >= threshold).T)
    order = np.lexsort((row, -values[row, column], column))
    # Every column has at least `limit` candidates: take the first `limit` of each.
    starts = np.searchsorted(column[order], np.arange(columns))
    return row[order[starts[np.newaxis, :] + np.arange(limit)[:, np.newaxis]]]
