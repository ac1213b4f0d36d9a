"""A non-personalised baseline: the most-rated films the person has not rated yet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from app.recommender.base import NotFitted, Ranking, Reason, unseen_top
from app.recommender.matrix import Profile, RatingMatrix


class Popularity:
    """Scores each film by its number of ratings: one list for everyone, minus what they rated.

    Fitted state: `matrix_` and `scores_` (each column's rating count as float).
    """

    name = "popularity"
    label = "Most rated films (not personalised)"
    description = (
        "Not personalised: the films most people rated. A floor any personal algorithm should beat."
    )
    method = "The same list for everyone: the most rated films {subject_has} not rated."
    reason_measure = "share of users"
    uses_k = False

    def __init__(self) -> None:
        self.matrix_: RatingMatrix | None = None
        self.scores_: np.ndarray | None = None

    def fit(self, matrix: RatingMatrix) -> Self:
        """Count each film's ratings."""
        self.matrix_ = matrix
        self.scores_ = matrix.item_count.astype(np.float64)
        return self

    def params(self) -> dict[str, Any]:
        """None: one list for everyone."""
        return {}

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """Nothing beyond the matrix's counts."""
        return {}

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """Counting is cheap: fit again."""
        return self.fit(matrix)

    def _fitted(self) -> tuple[RatingMatrix, np.ndarray]:
        if self.matrix_ is None or self.scores_ is None:
            raise NotFitted("fit() the model before using it")
        return self.matrix_, self.scores_

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n most-rated films not in the profile; ties to the lower column."""
        _, scores = self._fitted()
        best = unseen_top(scores, profile.items, n)
        return Ranking(best, scores[best])

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """One reason per film: the share of users who rated it and its mean rating."""
        matrix, _ = self._fitted()
        if limit < 1:
            return [[] for _ in ranking.items]
        share = matrix.item_count / max(matrix.n_users, 1)
        return [
            [
                Reason(
                    "popular",
                    int(matrix.item_ids[column]),
                    float(share[column]),
                    float(matrix.item_mean[column]),
                )
            ]
            for column in ranking.items
        ]
