"""Item-item kNN: each film's most similar films by cosine, kept as a sparse weight matrix.

Fit computes, a block of films at a time, the cosine between rating columns

    sim(i, j) = (x_i . x_j) / (|x_i| |x_j| + shrink)

and keeps, for every target film i, only its `neighbours` most similar films j (positive
similarity only), stored as W[j, i] in CSR by j. A profile's score for film i is then

    score(i) = sum over the profile's films j of  w(j) * W[j, i]

with w(j) the person's rating of j (or 1 with `binary=True`), so ranking one profile reads
only the rows of the films it rated: any ad-hoc profile works without a refit. Memory is
n_items x neighbours weights; the dense block during fit is capped at `block_bytes`.

The work is bounded too: when the pairs of co-rated films are more than `max_pairs`, only
the most rated films whose pairs fit are modelled (as EASE does with its memory budget);
the others are neither recommended nor used as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from app.recommender.base import NotFitted, Ranking, Reason, TooLarge, top, unseen_top
from app.recommender.matrix import INDEX, VALUE, Profile, RatingMatrix, wrap_csr

DEFAULT_NEIGHBOURS = 50
DEFAULT_SHRINK = 50.0
BLOCK_BYTES = 64 << 20
# The products X_i . X_j cost one multiply-add per pair of films a user rated, so a fit's
# work is the sum over users of (their ratings)^2: ~60 million on ml-latest-small, 22
# billion on ml-25m. SciPy multiplies about 2e8 pairs a second on one core here, so the
# default keeps a fit under a minute of the build process; at ml-25m's size that is the
# ~13,000 most rated films (bench/build_scale.py).
DEFAULT_MAX_PAIRS = 10_000_000_000
# Fewer films than this and the model is not worth serving: say so rather than fit it.
MIN_USEFUL_FILMS = 100


class ItemKNN:
    """Item-based kNN over pruned cosine similarities; explains with the films the person rated.

    Fitted state: `matrix_` and `weights_` (items x items CSR, row = rated film, column =
    recommended film).
    """

    name = "itemknn"
    label = "Similar films (item-item cosine)"
    description = (
        "Films similar to the ones you rated, where two films are similar when the same people "
        "rated them alike."
    )
    method = "Scored from the films {subject} rated and how they relate to others."
    reason_measure = "similarity"
    uses_k = False
    # Block rows are target films (prune per target) rather than source films.
    _rows_are_targets = True

    def __init__(
        self,
        neighbours: int = DEFAULT_NEIGHBOURS,
        shrink: float = DEFAULT_SHRINK,
        binary: bool = False,
        block_bytes: int = BLOCK_BYTES,
        max_pairs: int = DEFAULT_MAX_PAIRS,
    ) -> None:
        self.max_pairs = max_pairs
        self.neighbours = neighbours
        self.shrink = shrink
        self.binary = binary
        self.block_bytes = block_bytes
        self.matrix_: RatingMatrix | None = None
        self.weights_: sp.csr_matrix | None = None

    def modelled_items(self, matrix: RatingMatrix) -> np.ndarray:
        """Every column, or the most rated whose co-rated pairs fit in `max_pairs` (ascending)."""
        return most_rated_within(matrix, self.max_pairs)

    def fit(self, matrix: RatingMatrix) -> Self:
        """Build the pruned weight matrix block by block over the modelled films.

        TooLarge if `max_pairs` holds too few films to be useful.
        """
        items = self.modelled_items(matrix)
        if len(items) < min(MIN_USEFUL_FILMS, matrix.n_items):
            raise TooLarge(
                f"{self.label}: a limit of {self.max_pairs:,} co-rated pairs holds only "
                f"{len(items)} films, fewer than the {MIN_USEFUL_FILMS} it needs to be useful"
            )
        self._prepare(matrix, items)
        modelled = len(items)
        step = max(1, self.block_bytes // (8 * max(modelled, 1)))
        sources: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for start in range(0, modelled, step):
            stop = min(modelled, start + step)
            block = self._block(start, stop)
            # A film is not its own neighbour.
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            rows, cols = _top_per_row(block, self.neighbours)
            kept = block[rows, cols]
            positive = kept > 0
            # Block positions back to matrix columns.
            rows, cols, kept = items[rows[positive] + start], items[cols[positive]], kept[positive]
            if self._rows_are_targets:
                rows, cols = cols, rows
            sources.append(rows)
            targets.append(cols)
            values.append(kept)
        n = matrix.n_items
        weights = sp.csr_matrix(
            (
                np.concatenate(values).astype(VALUE) if values else np.empty(0, VALUE),
                (
                    np.concatenate(sources) if sources else np.empty(0, INDEX),
                    np.concatenate(targets) if targets else np.empty(0, INDEX),
                ),
            ),
            shape=(n, n),
        )
        weights.sort_indices()
        self._release()
        self.matrix_ = matrix
        self.weights_ = weights
        return self

    def params(self) -> dict[str, Any]:
        """Neighbours kept per film, shrinkage, ones or ratings, the work limits."""
        return {
            "neighbours": self.neighbours,
            "shrink": self.shrink,
            "binary": self.binary,
            "block_bytes": self.block_bytes,
            "max_pairs": self.max_pairs,
        }

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """The pruned weight matrix's CSR arrays."""
        _, weights = self._fitted()
        return {"data": weights.data, "indices": weights.indices, "indptr": weights.indptr}

    def restore(self, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]) -> Self:
        """The matrix and the weights, wrapped without a copy."""
        self.matrix_ = matrix
        self.weights_ = wrap_csr(
            arrays["data"], arrays["indices"], arrays["indptr"], (matrix.n_items, matrix.n_items)
        )
        return self

    def _prepare(self, matrix: RatingMatrix, items: np.ndarray) -> None:
        """Per-fit state the block computation needs: the modelled films' rows and norms."""
        self._rows = self._columns(matrix, items)
        self._norm = np.sqrt(np.asarray(self._rows.multiply(self._rows).sum(axis=1)).ravel())

    def _release(self) -> None:
        """Drop what _prepare() kept for the blocks."""
        self._rows = sp.csr_matrix((0, 0))
        self._norm = np.empty(0)

    def _columns(self, matrix: RatingMatrix, items: np.ndarray) -> sp.csr_matrix:
        """The films `items` x users, ratings or ones."""
        rows = matrix.by_item if len(items) == matrix.n_items else matrix.by_item[items]
        if not self.binary:
            return rows
        ones = rows.copy()
        ones.data = np.ones_like(ones.data)
        return ones

    def _block(self, start: int, stop: int) -> np.ndarray:
        """Cosine of modelled films start..stop with every modelled film, dense."""
        dots = (self._rows[start:stop] @ self._rows.T).toarray().astype(np.float64)
        denominator = self._norm[start:stop, np.newaxis] * self._norm[np.newaxis, :] + self.shrink
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = dots / denominator
        cosine[~np.isfinite(cosine)] = 0.0
        return cosine

    def _fitted(self) -> tuple[RatingMatrix, sp.csr_matrix]:
        if self.matrix_ is None or self.weights_ is None:
            raise NotFitted("fit() the model before using it")
        return self.matrix_, self.weights_

    def _profile_weights(self, profile: Profile) -> np.ndarray:
        if self.binary:
            return np.ones(len(profile.items), dtype=np.float64)
        return profile.ratings.astype(np.float64)

    def rank(self, profile: Profile, n: int, k: int | None = None) -> Ranking:
        """The n best unrated films by the weighted sum over the profile's films' neighbours."""
        matrix, weights = self._fitted()
        rows = weights[profile.items]
        per_entry = np.repeat(self._profile_weights(profile), np.diff(rows.indptr))
        # With nothing to count bincount gives integers, which cannot hold -inf below.
        scores = np.bincount(
            rows.indices, weights=rows.data * per_entry, minlength=matrix.n_items
        ).astype(np.float64, copy=False)
        # Films linked to nothing the person rated have no evidence; they are not ranked.
        scores[np.bincount(rows.indices, minlength=matrix.n_items) == 0] = -np.inf
        best = unseen_top(scores, profile.items, n)
        return Ranking(best, scores[best])

    def explain(self, profile: Profile, ranking: Ranking, limit: int = 3) -> list[list[Reason]]:
        """For each film, the rated films contributing most (weight x rating), strongest first."""
        matrix, weights = self._fitted()
        block = weights[profile.items][:, ranking.items].tocsc()
        contribution_weights = self._profile_weights(profile)
        reasons: list[list[Reason]] = []
        for position in range(len(ranking.items)):
            start, end = block.indptr[position], block.indptr[position + 1]
            sources = block.indices[start:end]
            similarity = block.data[start:end].astype(np.float64)
            contribution = similarity * contribution_weights[sources]
            # top() breaks ties to the lower index; sources are in ascending column order.
            chosen = top(contribution, limit)
            chosen = chosen[contribution[chosen] > 0]
            reasons.append(
                [
                    Reason(
                        "movie",
                        int(matrix.item_ids[profile.items[sources[i]]]),
                        float(similarity[i]),
                        float(profile.ratings[sources[i]]),
                    )
                    for i in chosen
                ]
            )
        return reasons


def _top_per_row(block: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of each row's `count` largest values (unordered within a row)."""
    rows, width = block.shape
    if count >= width:
        grid = np.indices(block.shape)
        return grid[0].ravel(), grid[1].ravel()
    cols = np.argpartition(-block, count - 1, axis=1)[:, :count]
    return np.repeat(np.arange(rows), count), cols.ravel()


def co_rated_pairs(matrix: RatingMatrix, items: np.ndarray | None = None) -> int:
    """Pairs of (film, film) rated by the same user, counted per user: the item-item work.

    Over every film, or only over the columns `items`.
    """
    if items is None:
        per_user = np.diff(matrix.by_user.indptr).astype(np.int64)
    else:
        kept = np.zeros(matrix.n_items, dtype=bool)
        kept[items] = True
        per_user = _per_user(matrix, kept[matrix.by_user.indices])
    return int(np.dot(per_user, per_user))


def most_rated_within(matrix: RatingMatrix, max_pairs: int) -> np.ndarray:
    """The most rated columns (ties to the lower) whose co-rated pairs are at most `max_pairs`.

    Every column when they all fit. Pairs grow with each film added, so a binary search over
    how many of the most rated to keep finds the largest prefix that fits.
    """
    n = matrix.n_items
    if co_rated_pairs(matrix) <= max_pairs:
        return np.arange(n)
    order = np.lexsort((np.arange(n), -matrix.item_count))
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    rank_of_rating = rank[matrix.by_user.indices]

    def pairs_within(count: int) -> int:
        per_user = _per_user(matrix, rank_of_rating < count)
        return int(np.dot(per_user, per_user))

    low, high = 0, n  # pairs_within(low) fits, pairs_within(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if pairs_within(middle) <= max_pairs else (low, middle)
    return np.sort(order[:low])


def _per_user(matrix: RatingMatrix, kept: np.ndarray) -> np.ndarray:
    """How many of each user's ratings `kept` (one flag per stored rating) selects."""
    running = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
    indptr = matrix.by_user.indptr
    return running[indptr[1:]] - running[indptr[:-1]]
