"""Which films the rating page offers a visitor first (its starter grid), by a named strategy.

A serving decision, so it lives with the recommenders: shared by the engine (the grid /rate
shows) and the visitor evaluation (profiles drawn from that grid first), so the grid measured
is the grid served.

- `popular`: the most rated films (ties to the lower movie id).
- `divisive`: popular and divisive, number of ratings x standard deviation of the ratings,
  on the idea that a film people disagree on tells more about whoever rates it.

Measured with `movierec evaluate --split visitor` on ml-latest-small, `popular` gave the
better lists (README, Evaluation): a divisive grid is a grid fewer visitors can rate.
"""

from __future__ import annotations

import numpy as np

from app.recommender.matrix import RatingMatrix

STRATEGIES = ("popular", "divisive")
STARTER_STRATEGY = "popular"
"""The strategy the rating page uses: the one that measured best."""


def starter_items(matrix: RatingMatrix, count: int, strategy: str = STARTER_STRATEGY) -> np.ndarray:
    """The `count` matrix columns to offer first, best first; ValueError for an unknown strategy."""
    popularity = matrix.item_count.astype(np.float64)
    if strategy == "popular":
        score = popularity
    elif strategy == "divisive":
        score = popularity * _rating_spread(matrix)
    else:
        raise ValueError(f"unknown starter strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    # lexsort sorts by the last key first: score descending, then movie id ascending.
    return np.lexsort((matrix.item_ids, -score))[:count]


def _rating_spread(matrix: RatingMatrix) -> np.ndarray:
    """Each film's standard deviation of ratings (0 for films rated fewer than twice)."""
    by_item = matrix.by_item
    rows = np.repeat(np.arange(matrix.n_items), np.diff(by_item.indptr))
    squares = np.bincount(
        rows, weights=np.square(by_item.data, dtype=np.float64), minlength=matrix.n_items
    )
    counts = matrix.item_count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = squares / counts - np.square(matrix.item_sum / counts)
    return np.where(counts > 1, np.sqrt(np.clip(np.nan_to_num(variance), 0.0, None)), 0.0)
