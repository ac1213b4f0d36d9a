"""EASE (Steck 2019): a dense item x item linear model solved in closed form.

With X the users x films rating matrix (films rated at least `min_ratings` times; ones
instead of ratings with `binary=True`, as in the paper) and P = (X^T X + l2 I)^-1, the
weights are B = I - P diag(1 / diag(P)) with a zero diagonal: each film is predicted from
all the others, so a profile x scores film j as

    score(j) = sum over the profile's films i of  x_i * B[i, j]

Scoring needs only the rows of B for the films rated, so ad-hoc profiles work without a
refit. Feeding ratings rather than ones, with a stronger l2 to match their scale, measured
better on ml-latest-small (README, Evaluation), so that is the default.
The dense solve needs about three n x n float64 arrays, so when the films rated often enough
are more than `memory_budget` bytes can hold, only the most rated that fit are modelled (the
others are never recommended by EASE); a budget too small for even MIN_USEFUL_FILMS raises
TooLarge before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from app.recommender.base import (
    NotFitted,
    Ranking,
    Reason,
    TooLarge,
    leading_rows,
    top_rows,
    unseen_top,
)
from app.recommender.matrix import Profile, RatingMatrix

DEFAULT_L2 = 2500.0
DEFAULT_MIN_RATINGS = 5
DEFAULT_MEMORY_BUDGET = 2 << 30
# Fewer films than this and EASE is not worth serving: say so rather than fit it.
MIN_USEFUL_FILMS = 100
# Peak during fit: the Gram matrix and its inverse in float64, plus the float32 weights
# and LAPACK's workspace; three float64 n x n arrays bound it.
BYTES_PER_CELL = 3 * 8


class EASE:
    """Embarrassingly shallow autoencoder over films with at least `min_ratings` ratings.

    Fitted state: `matrix_`, `columns_` (the matrix columns modelled, ascending), `position_`
    (each matrix column's index in `columns_`, -1 if not modelled) and `weights_` (float32
    len(columns_) x len(columns_), zero diagonal).
    """

    name = "ease"
    label = "EASE: linear film-to-film model"
    description = (
        "A linear model that learns, for every film, how much each other film predicts it; "
        "strong on explicit ratings such as MovieLens."
    )
    method = "Scored from the films {subject} rated and how they relate to others."
    reason_measure = "weight"
    uses_k = False

    def __init__(
        self,
        l2: float = DEFAULT_L2,
        min_ratings: int = DEFAULT_MIN_RATINGS,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        binary: bool = False,
        max_films: int | None = None,
    ) -> None:
        self.binary = binary
        # A cap below what the budget holds, to measure what a cap costs (movierec evaluate).
        self.film_cap = max_films
        self.l2 = l2
        self.min_ratings = min_ratings
        self.memory_budget = memory_budget
        self.matrix_: RatingMatrix | None = None
        self.columns_: np.ndarray | None = None
        self.position_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None

    @property
    def max_films(self) -> int:
        """The most films whose dense solve fits in `memory_budget` (and the cap, if any)."""
        fits = math.isqrt(self.memory_budget // BYTES_PER_CELL)
        return fits if self.film_cap is None else min(fits, self.film_cap)

    def modelled_columns(self, matrix: RatingMatrix) -> np.ndarray:
        """The columns with at least `min_ratings` ratings, at most `max_films` of them.

        When the budget cannot hold them all, the most rated are kept (ties to the lower
        column): they carry most of the signal, and leaving out the long tail costs little
        (README, Evaluation).
        """
        columns = np.flatnonzero(matrix.item_count >= self.min_ratings)
        if len(columns) <= self.max_films:
            return columns
        by_count = np.lexsort((columns, -matrix.item_count[columns]))
        return np.sort(columns[by_count[: self.max_films]])

    def estimate_bytes(self, matrix: RatingMatrix) -> int:
        """Peak memory fit() would need for this matrix."""
        n = len(self.modelled_columns(matrix))
        return BYTES_PER_CELL * n * n

    def fit(self, matrix: RatingMatrix) -> Self:
        """Solve for B over the modelled films; TooLarge if the budget holds too few of them."""
        if self.max_films < MIN_USEFUL_FILMS:
            raise TooLarge(
                f"EASE's budget of {self.memory_budget / 2**20:,.0f} MiB holds only "
                f"{self.max_films} films, fewer than the {MIN_USEFUL_FILMS} it needs to be "
                f"useful; give it at least {BYTES_PER_CELL * MIN_USEFUL_FILMS**2 / 2**20:.0f} MiB"
            )
        columns = self.modelled_columns(matrix)
        inputs = matrix.by_user[:, columns]
        if self.binary:
            inputs.data = np.ones_like(inputs.data)
        gram = (inputs.T @ inputs).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        del gram
        # B = I - P / diag(P), column-wise; the diagonal becomes exactly 0.
        precision /= -np.diag(precision)[np.newaxis, :]
        np.fill_diagonal(precision, 0.0)
        position = np.full(matrix.n_items, -1, dtype=np.int64)
        position[columns] = np.arange(len(columns))
        self.matrix_ = matrix
        self.columns_ = columns
        self.position_ = position
        self.weights_ = precision.astype(np.float32)
        return self

    def params(self) -> dict[str, Any]:
        """Regularisation, the film threshold, the memory budget, ones or ratings, a cap."""
        params: dict[str, Any] = {
            "l2": self.l2,
            "min_ratings": self.min_ratings,
            "memory_budget": self.memory_budget,
            "binary": self.binary,
        }
        if self.film_cap is not None:
            params["max_films"] = self.film_cap
        return params

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """The modelled columns and the weights B."""
        _, columns, _, weights = self._fitted()
        return {"columns": columns, "weights": weights}

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """The matrix, the columns and the weights (mapped, not copied)."""
        columns = arrays["columns"]
        position = np.full(matrix.n_items, -1, dtype=np.int64)
        position[columns] = np.arange(len(columns))
        self.matrix_ = matrix
        self.columns_ = columns
        self.position_ = position
        self.weights_ = arrays["weights"]
        return self

    def _fitted(self) -> tuple[RatingMatrix, np.ndarray, np.ndarray, np.ndarray]:
        if (
            self.matrix_ is None
            or self.columns_ is None
            or self.position_ is None
            or self.weights_ is None
        ):
            raise NotFitted("fit() the model before using it")
        return self.matrix_, self.columns_, self.position_, self.weights_

    def _inputs(self, profile: Profile) -> np.ndarray:
        if self.binary:
            return np.ones(len(profile.items), dtype=np.float32)
        return np.asarray(profile.ratings, dtype=np.float32)

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best unrated modelled films by the sum of B's rows for the films rated."""
        matrix, columns, position, weights = self._fitted()
        indptr = np.array([0, len(profile.items)])
        inputs = self._inputs(profile)
        scores = np.full(matrix.n_items, -np.inf)
        scores[columns] = profile_scores(weights, position, indptr, profile.items, inputs)[0]
        best = unseen_top(scores, profile.items, n)
        return Ranking(best, scores[best])

    def rank_users(self, rows: slice, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Each known user's n best unrated films, as rank() gives them, for a block of rows.

        Matrix columns (int32, users x n) and their float32 scores, best first; a list
        shorter than n ends in -inf scores. The scores are rank()'s to the bit: the same
        sparse product, whose every row is summed in the same order whatever the block.
        """
        matrix, columns, position, weights = self._fitted()
        block = matrix.by_user[rows]
        inputs = np.ones(block.nnz, np.float32) if self.binary else block.data
        scores = profile_scores(weights, position, block.indptr, block.indices, inputs)
        # The films each user rated are out of their list.
        users = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        seen = position[block.indices]
        scores[users[seen >= 0], seen[seen >= 0]] = -np.inf
        best, top_scores = top_rows(scores, n)
        return columns[best].astype(np.int32), top_scores

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """For each film, the rated films contributing most (rating x weight), strongest first.

        `Reason.similarity` is the learned weight B[i, j] of the rated film towards this one.
        """
        matrix, _, position, weights = self._fitted()
        rated = position[profile.items]
        modelled = np.flatnonzero(rated >= 0)
        targets = position[ranking.items]
        reasons: list[list[Reason]] = [[] for _ in ranking.items]
        shown = np.flatnonzero(targets >= 0)
        if len(modelled) == 0 or len(shown) == 0:
            return reasons
        # One block of weights, rated films x films shown, rather than a column at a time.
        block = weights[np.ix_(rated[modelled], targets[shown])].astype(np.float64)
        inputs = self._inputs(profile)[modelled].astype(np.float64)
        contribution = block * inputs[:, np.newaxis]
        # Strongest first, ties to the lower film (a stable sort's order).
        strongest = leading_rows(contribution, limit)
        # Python values once for the whole table: a NumPy scalar read per reason cost more.
        shown_columns = np.arange(len(shown))
        movie_ids = matrix.item_ids[profile.items[modelled]][strongest].tolist()
        weights_shown = block[strongest, shown_columns].tolist()
        ratings = profile.ratings[modelled][strongest].tolist()
        positive = (contribution[strongest, shown_columns] > 0).tolist()
        for column, film in enumerate(shown.tolist()):
            reasons[film] = [
                Reason("movie", movie_ids[i][column], weights_shown[i][column], ratings[i][column])
                for i in range(len(strongest))
                if positive[i][column]
            ]
        return reasons


def profile_scores(
    weights: np.ndarray,
    position: np.ndarray,
    indptr: np.ndarray,
    items: np.ndarray,
    inputs: np.ndarray,
) -> np.ndarray:
    """x B for each profile, users x modelled films (float32).

    The profiles are CSR rows: `indptr`, matrix columns `items` (ascending in each row) and
    their `inputs` (ratings or ones); `position` maps a column to its row of `weights`. A
    sparse row times the dense weights adds each rated film's row of B in turn, in place: no
    gathered copy of those rows (a 5,000-rating profile would copy 190 MB at 25M), and a
    row's sum does not depend on the rows beside it.
    """
    rated = position[items]
    modelled = rated >= 0
    # Each row's count of modelled films, as the CSR of modelled columns needs it.
    kept = np.concatenate(([0], np.cumsum(modelled)))[indptr]
    profiles = sp.csr_matrix(
        (inputs[modelled].astype(np.float32), rated[modelled], kept),
        shape=(len(indptr) - 1, len(weights)),
    )
    return np.asarray(profiles @ weights, dtype=np.float32)
