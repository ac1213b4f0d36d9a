"""User-user kNN with a larger neighbourhood and similarity-weighted, optionally centred, votes.

The original averages 5 neighbours' ratings with unrated as 0, so one neighbour's 5-star
obscurity outranks a film all of them liked. Here each of the k neighbours who rated a film
adds similarity x rating (or similarity x (rating - their mean), `center=True`):

    score(i) = sum over neighbours v who rated i of  cos(u, v) * r_vi

Unrated films add nothing, so a film many close neighbours liked scores highest. Similarity
is the same cosine as the original's, computed from the inverted index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from app.recommender.base import Ranking, unseen_top
from app.recommender.matrix import Profile, RatingMatrix
from app.recommender.original import OriginalUserKNN

DEFAULT_NEIGHBOURS = 30


class WeightedUserKNN(OriginalUserKNN):
    """User kNN scored by the similarity-weighted sum of the k neighbours' ratings.

    `k` is the default neighbourhood (per request via rank(k=...)); `center` subtracts each
    neighbour's mean rating first, so a film counts for what a neighbour thought of it
    relative to their habit. Fitted state: `matrix_` and `user_mean_`.
    """

    name = "userknn-weighted"
    label = "Similar users, similarity-weighted votes"
    description = (
        "Like the original, but a neighbour's rating counts in proportion to how alike they "
        "are, from a larger neighbourhood."
    )
    method = (
        "Scored from the ratings of the {neighbours} most similar users, weighted by similarity."
    )

    def __init__(self, k: int = DEFAULT_NEIGHBOURS, center: bool = False) -> None:
        super().__init__(k)
        self.center = center
        self.user_mean_: np.ndarray | None = None

    def fit(self, matrix: RatingMatrix) -> Self:
        """Keep the matrix and each user's mean rating."""
        super().fit(matrix)
        counts = np.diff(matrix.by_user.indptr)
        sums = np.asarray(matrix.by_user.sum(axis=1), dtype=np.float64).ravel()
        self.user_mean_ = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        return self

    def params(self) -> dict[str, Any]:
        """Neighbourhood size and centring."""
        return {"k": self.k, "center": self.center}

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """Each user's mean rating."""
        assert self.user_mean_ is not None, "fit() first"
        return {"user_mean": self.user_mean_}

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """The matrix and the stored means."""
        self.matrix_ = matrix
        self.user_mean_ = arrays["user_mean"]
        return self

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best unrated films by sum of similarity x (centred) rating over k neighbours."""
        matrix = self.matrix
        rows, similarities = self.neighbours(profile, k)
        keep = similarities > 0
        rows, similarities = rows[keep], similarities[keep]
        if len(rows) == 0:
            return Ranking(np.empty(0, dtype=np.int64), np.empty(0), rows, similarities)
        block = matrix.by_user[rows]
        per_rating = np.repeat(similarities, np.diff(block.indptr))
        values = block.data.astype(np.float64)
        if self.center:
            assert self.user_mean_ is not None
            values -= np.repeat(self.user_mean_[rows], np.diff(block.indptr))
        scores = np.bincount(
            block.indices, weights=per_rating * values, minlength=matrix.n_items
        ).astype(np.float64, copy=False)
        # Films no neighbour rated cannot be justified; leave them out rather than rank zeros.
        scores[np.bincount(block.indices, minlength=matrix.n_items) == 0] = -np.inf
        best = unseen_top(scores, profile.items, n)
        return Ranking(best, scores[best], rows, similarities)
