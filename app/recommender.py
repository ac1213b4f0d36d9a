"""The original recommender: user-user cosine kNN over a sparse user x movie rating matrix.

NumPy/SciPy/scikit-learn only: no web, no I/O. Nothing dense of size users x movies or
users x users is ever built; one user's similarities are a sparse matrix-vector product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


class UnknownUser(LookupError):
    """The user id is not in the fitted data; carries the id range for a helpful message."""

    def __init__(self, user_id: int, lowest: int, highest: int, count: int) -> None:
        super().__init__(f"User {user_id} is not in the dataset")
        self.user_id = user_id
        self.lowest = lowest
        self.highest = highest
        self.count = count


class NotFitted(RuntimeError):
    """The model was used before `fit()`."""


@dataclass(frozen=True)
class Neighbour:
    """A similar user and their cosine similarity to the target user."""

    user_id: int
    similarity: float


@dataclass(frozen=True)
class Recommendation:
    """A movie, its score (mean neighbour rating, unrated = 0) and how many neighbours rated it."""

    movie_id: int
    score: float
    neighbours_rated: int


class UserKNN:
    """User-based kNN: cosine similarity between users, mean of the k neighbours' ratings.

    Fitted state (trailing underscore): `user_ids_` and `item_ids_` map matrix rows and
    columns to MovieLens ids (both sorted ascending, so index order is id order);
    `ratings_` is the CSR user x movie matrix with unrated = 0; `unit_rows_` the same rows
    L2-normalised; `item_mean_` each movie's mean rating over all users.
    """

    def __init__(self) -> None:
        self.user_ids_: np.ndarray | None = None

    def fit(self, ratings: pd.DataFrame) -> UserKNN:
        """Build the rating matrix from a frame with user_id, movie_id and rating columns."""
        users = ratings["user_id"].to_numpy()
        items = ratings["movie_id"].to_numpy()
        values = ratings["rating"].to_numpy(dtype=np.float64)
        self.user_ids_, rows = np.unique(users, return_inverse=True)
        self.item_ids_, cols = np.unique(items, return_inverse=True)
        shape = (len(self.user_ids_), len(self.item_ids_))
        self.ratings_ = sp.csr_matrix((values, (rows, cols)), shape=shape)
        self.ratings_.sort_indices()
        # Rows are L2-normalised, so the dot product of two rows is their cosine similarity.
        self.unit_rows_ = _l2_normalise_rows(self.ratings_)
        counts = np.bincount(cols, minlength=shape[1])
        sums = np.bincount(cols, weights=values, minlength=shape[1])
        self.item_mean_ = sums / np.maximum(counts, 1)
        self.item_count_ = counts
        return self

    @property
    def n_users(self) -> int:
        """Number of users in the fitted data."""
        return 0 if self.user_ids_ is None else len(self.user_ids_)

    def similar_users(self, user_id: int, k: int = 5) -> list[Neighbour]:
        """The k users most similar to `user_id` (itself excluded), ties to the lower user id."""
        return self._neighbours(*self._neighbour_rows(self._row(user_id), k))

    def recommend(self, user_id: int, n: int = 5, k: int = 5) -> list[Recommendation]:
        """The n best movies `user_id` has not rated, by the mean of k neighbours' ratings."""
        row = self._row(user_id)
        return self._score(row, self._neighbour_rows(row, k)[0], n)

    def recommend_with_neighbours(
        self, user_id: int, n: int = 5, k: int = 5
    ) -> tuple[list[Neighbour], list[Recommendation]]:
        """similar_users() and recommend() together, from one pass over the similarities."""
        row = self._row(user_id)
        neighbour_rows, similarities = self._neighbour_rows(row, k)
        return (self._neighbours(neighbour_rows, similarities), self._score(row, neighbour_rows, n))

    def _neighbours(self, rows: np.ndarray, similarities: np.ndarray) -> list[Neighbour]:
        assert self.user_ids_ is not None
        return [
            Neighbour(int(self.user_ids_[r]), float(s))
            for r, s in zip(rows, similarities, strict=True)
        ]

    def _score(self, row: int, neighbour_rows: np.ndarray, n: int) -> list[Recommendation]:
        if len(neighbour_rows) == 0:
            return []
        block = self.ratings_[neighbour_rows]
        # Unrated counts as 0, so the mean is the column sum over the number of neighbours.
        scores = np.asarray(block.sum(axis=0)).ravel() / len(neighbour_rows)
        rated_by = np.bincount(block.indices, minlength=scores.shape[0])
        candidates = np.ones(scores.shape[0], dtype=bool)
        candidates[
            self.ratings_.indices[self.ratings_.indptr[row] : self.ratings_.indptr[row + 1]]
        ] = False
        columns = np.flatnonzero(candidates)
        best = columns[_top(scores[columns], n)]
        return [
            Recommendation(int(self.item_ids_[c]), float(scores[c]), int(rated_by[c])) for c in best
        ]

    def movie_stats(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each movie's mean rating over all users and its number of ratings (NaN and 0 if none)."""
        self._check_fitted()
        positions = np.searchsorted(self.item_ids_, movie_ids)
        positions = np.clip(positions, 0, len(self.item_ids_) - 1)
        found = self.item_ids_[positions] == movie_ids
        counts = np.where(found, self.item_count_[positions], 0)
        return np.where(counts > 0, self.item_mean_[positions], np.nan), counts

    def _neighbour_rows(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        similarities = np.asarray(self.unit_rows_ @ self.unit_rows_[row].T.toarray()).ravel()
        similarities[row] = -np.inf
        best = _top(similarities, k)
        best = best[np.isfinite(similarities[best])]
        return best, similarities[best]

    def _row(self, user_id: int) -> int:
        row = self._row_or_none(user_id)
        if row is None:
            ids = self.user_ids_
            assert ids is not None
            raise UnknownUser(user_id, int(ids[0]), int(ids[-1]), len(ids))
        return row

    def _row_or_none(self, user_id: int) -> int | None:
        self._check_fitted()
        ids = self.user_ids_
        assert ids is not None
        position = int(np.searchsorted(ids, user_id))
        if position < len(ids) and ids[position] == user_id:
            return position
        return None

    def _check_fitted(self) -> None:
        if self.user_ids_ is None:
            raise NotFitted("fit() the model before using it")


def _l2_normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its Euclidean norm (empty rows stay zero).

    The same as scikit-learn's normalize(norm="l2"); done here because importing
    scikit-learn costs each worker about a second before it can answer its first request.
    """
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, best first; ties go to the lower index.

    Partial selection (argpartition) keeps this linear in len(values); every value equal to
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
