"""The original recommender: user-user cosine kNN, scored by the neighbours' mean rating.

The seed design, kept exactly: cosine similarity between users' rating rows (unrated = 0),
the k most similar users, and each unrated movie scored by the mean of those k users'
ratings with unrated counted as 0; ties go to the lower id. Nothing dense of size
users x users or users x movies is built: one profile's similarities come from the
inverted (movie -> users) index, touching only the users who share a movie with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from app.recommender.base import NotFitted, Ranking, Reason, top, unseen_top
from app.recommender.matrix import Profile, RatingMatrix, gather_rows

DEFAULT_K = 5


@dataclass(frozen=True)
class Neighbour:
    """A similar user and their cosine similarity to the target user."""

    user_id: int
    similarity: float


class OriginalUserKNN:
    """User-based kNN with cosine similarity and the plain mean of the k neighbours' ratings.

    `k` is the default neighbourhood; `rank()` takes another per request. Fitted state:
    `matrix_`, the RatingMatrix (which owns the id <-> row and column mappings).
    """

    name = "original"
    label = "Original: similar users, plain mean"
    description = (
        "The first design: the 5 users whose ratings are most alike (cosine similarity), and "
        "each film scored by their mean rating, a film they did not rate counting as 0."
    )
    method = (
        "Scored by the mean rating of the {neighbours} most similar users (a film they did not "
        "rate counts as 0)."
    )
    reason_measure = "similarity"
    uses_k = True

    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = k
        self.matrix_: RatingMatrix | None = None

    def fit(self, matrix: RatingMatrix) -> Self:
        """Keep the matrix: the norms and the inverted index it holds are all this needs."""
        self.matrix_ = matrix
        return self

    def params(self) -> dict[str, Any]:
        """The default neighbourhood size."""
        return {"k": self.k}

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """Nothing beyond the matrix."""
        return {}

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """Fitting is keeping the matrix."""
        return self.fit(matrix)

    @property
    def matrix(self) -> RatingMatrix:
        """The fitted matrix; NotFitted before fit()."""
        if self.matrix_ is None:
            raise NotFitted("fit() the model before using it")
        return self.matrix_

    def similarities(self, profile: Profile) -> np.ndarray:
        """Cosine similarity of the profile with every user (its own row set to -inf).

        dot(profile, user) sums, over the profile's movies, its rating times the user's;
        the inverted index lists exactly the users who rated each movie, so users sharing
        nothing stay at 0 without being visited.
        """
        matrix = self.matrix
        dots = np.zeros(matrix.n_users, dtype=np.float64)
        if len(profile.items):
            # (1 x movies) @ (movies x users): SciPy's sparse product walks only those movies.
            dots = np.asarray(
                (profile.ratings[np.newaxis, :] @ matrix.by_item[profile.items]), dtype=np.float64
            ).ravel()
        norm = profile.norm
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = dots / (matrix.user_norm * norm)
        cosine[~np.isfinite(cosine)] = 0.0
        if profile.row is not None:
            cosine[profile.row] = -np.inf
        return cosine

    def neighbours(self, profile: Profile, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the k most similar users and their similarities, best first."""
        cosine = self.similarities(profile)
        best = top(cosine, self.k if k is None else k)
        best = best[np.isfinite(cosine[best])]
        return best, cosine[best]

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best unrated movies by the mean of the k neighbours' ratings (unrated = 0)."""
        rows, similarities = self.neighbours(profile, k)
        if len(rows) == 0:
            return Ranking(np.empty(0, dtype=np.int64), np.empty(0), rows, similarities)
        columns, ratings = gather_rows(self.matrix.by_user, rows)
        # Unrated counts as 0, so the mean is the column sum over the number of neighbours.
        scores = np.bincount(columns, weights=ratings, minlength=self.matrix.n_items) / len(rows)
        best = unseen_top(scores, profile.items, n)
        return Ranking(best, scores[best], rows, similarities)

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """For each film, the neighbours who rated it: most similar first."""
        matrix = self.matrix
        block = matrix.by_user[ranking.neighbours].tocsc()[:, ranking.items]
        reasons: list[list[Reason]] = []
        for position in range(len(ranking.items)):
            start, end = block.indptr[position], block.indptr[position + 1]
            # Neighbour order is similarity order, so the lowest positions come first.
            order = np.argsort(block.indices[start:end], kind="stable")[:limit]
            reasons.append(
                [
                    Reason(
                        "user",
                        int(matrix.user_ids[ranking.neighbours[block.indices[start + i]]]),
                        float(ranking.similarities[block.indices[start + i]]),
                        float(block.data[start + i]),
                    )
                    for i in order
                ]
            )
        return reasons


def neighbours_rated(matrix: RatingMatrix, ranking: Ranking) -> np.ndarray:
    """How many of the ranking's neighbours rated each of its films."""
    if len(ranking.items) == 0:
        return np.empty(0, dtype=np.int64)
    columns, _ = gather_rows(matrix.by_user, ranking.neighbours)
    return np.bincount(columns, minlength=matrix.n_items)[ranking.items]
