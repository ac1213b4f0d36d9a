"""The rating matrix every algorithm fits on: users x movies, sparse, 32-bit, indexed both ways.

NumPy/SciPy only: no web, no I/O. Rows are users and columns are movies, both in ascending
MovieLens id order; unrated cells are absent (the original design's 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # pandas is loaded only where CSV files are read
    import pandas as pd

INDEX = np.int32
VALUE = np.float32


class UnknownUser(LookupError):
    """The user id is not in the fitted data; carries the id range for a helpful message."""

    def __init__(self, user_id: int, lowest: int, highest: int, count: int) -> None:
        super().__init__(f"User {user_id} is not in the dataset")
        self.user_id = user_id
        self.lowest = lowest
        self.highest = highest
        self.count = count


@dataclass(frozen=True)
class Profile:
    """Someone's ratings as matrix columns: a known user's row, or ratings given ad hoc.

    `items` are column indices in ascending order, `ratings` their values. `row` is the
    user's own row when they are in the matrix, so user-based methods leave them out of
    their own neighbours; an ad-hoc profile has no row and is compared with everyone.
    """

    items: np.ndarray
    ratings: np.ndarray
    row: int | None = None

    @property
    def norm(self) -> float:
        """Euclidean length of the rating vector."""
        return float(np.sqrt(np.dot(self.ratings.astype(np.float64), self.ratings)))


@dataclass(frozen=True, eq=False)
class RatingMatrix:
    """Users x movies ratings in CSR (`by_user`) and its transpose (`by_item`, the inverted index).

    Both hold float32 ratings with int32 indices, so the arrays can be memory-mapped from a
    snapshot as they are. `user_norm` is each row's Euclidean length; `item_count` and
    `item_sum` give each movie's number of ratings and their total.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    by_user: sp.csr_matrix
    by_item: sp.csr_matrix
    user_norm: np.ndarray
    item_count: np.ndarray
    item_sum: np.ndarray
    _item_mean: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.item_count > 0, self.item_sum / self.item_count, np.nan)
        object.__setattr__(self, "_item_mean", mean)

    @classmethod
    def from_frame(cls, ratings: pd.DataFrame) -> RatingMatrix:
        """Build from a frame with user_id, movie_id and rating columns, one row per pair."""
        user_ids, rows = _dense_codes(ratings["user_id"].to_numpy())
        item_ids, cols = _dense_codes(ratings["movie_id"].to_numpy())
        values = ratings["rating"].to_numpy(dtype=VALUE)
        return cls.from_coordinates(user_ids, item_ids, rows, cols, values)

    @classmethod
    def from_coordinates(
        cls,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
    ) -> RatingMatrix:
        """Build from (row, column, rating) triples over the given sorted id arrays."""
        shape = (len(user_ids), len(item_ids))
        rows = np.asarray(rows, dtype=INDEX)
        cols = np.asarray(cols, dtype=INDEX)
        values = np.asarray(values, dtype=VALUE)
        if _sorted_by_row_then_column(rows, cols):
            # MovieLens files come sorted by user then movie: the CSR arrays are the columns.
            indptr = np.zeros(shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
            by_user = _as_32bit(wrap_csr(values, cols, indptr, shape))
        else:
            by_user = _as_32bit(sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=VALUE))
            by_user.sort_indices()
        # The transpose comes out of SciPy's linear CSR -> CSC pass with sorted rows.
        by_item = _as_32bit(by_user.T.tocsr())
        squares = np.square(values, dtype=np.float64)
        return cls(
            user_ids=np.asarray(user_ids, dtype=np.int64),
            item_ids=np.asarray(item_ids, dtype=np.int64),
            by_user=by_user,
            by_item=by_item,
            user_norm=np.sqrt(np.bincount(rows, weights=squares, minlength=shape[0])),
            item_count=np.bincount(cols, minlength=shape[1]).astype(INDEX),
            item_sum=np.bincount(cols, weights=values, minlength=shape[1]),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays that make up the matrix, by name, for a snapshot."""
        arrays = {"user_ids": self.user_ids, "item_ids": self.item_ids}
        for part in ("by_user", "by_item"):
            matrix = getattr(self, part)
            arrays.update(
                {
                    f"{part}.data": matrix.data,
                    f"{part}.indices": matrix.indices,
                    f"{part}.indptr": matrix.indptr,
                }
            )
        arrays.update(user_norm=self.user_norm, item_count=self.item_count, item_sum=self.item_sum)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RatingMatrix:
        """Rebuild from `to_arrays()` output without copying (the arrays may be memory-mapped)."""
        shape = (len(arrays["user_ids"]), len(arrays["item_ids"]))
        parts = {
            part: wrap_csr(
                arrays[f"{part}.data"],
                arrays[f"{part}.indices"],
                arrays[f"{part}.indptr"],
                size,
            )
            for part, size in (("by_user", shape), ("by_item", shape[::-1]))
        }
        return cls(
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            by_user=parts["by_user"],
            by_item=parts["by_item"],
            user_norm=arrays["user_norm"],
            item_count=arrays["item_count"],
            item_sum=arrays["item_sum"],
        )

    @property
    def n_users(self) -> int:
        """Number of rows."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of columns."""
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        """Number of ratings."""
        return int(self.by_user.nnz)

    @property
    def item_mean(self) -> np.ndarray:
        """Each movie's mean rating over everyone who rated it (NaN if nobody did)."""
        return self._item_mean

    def row(self, user_id: int) -> int:
        """The matrix row of a MovieLens user id; UnknownUser if absent."""
        position = int(np.searchsorted(self.user_ids, user_id))
        if position < self.n_users and self.user_ids[position] == user_id:
            return position
        raise UnknownUser(user_id, int(self.user_ids[0]), int(self.user_ids[-1]), self.n_users)

    def items_of(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The item (column) of each movie id and whether the matrix has it at all."""
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        positions = np.searchsorted(self.item_ids, movie_ids)
        positions = np.clip(positions, 0, max(self.n_items - 1, 0))
        found = self.item_ids[positions] == movie_ids if self.n_items else positions < 0
        return positions, found

    def profile(self, row: int) -> Profile:
        """A known user's ratings, tagged with their row."""
        start, end = self.by_user.indptr[row], self.by_user.indptr[row + 1]
        return Profile(self.by_user.indices[start:end], self.by_user.data[start:end], row)

    def adhoc_profile(self, movie_ids: np.ndarray, ratings: np.ndarray) -> Profile:
        """Ratings given by someone not in the matrix; movies it does not hold are dropped."""
        columns, found = self.items_of(movie_ids)
        order = np.argsort(columns[found], kind="stable")
        return Profile(
            columns[found][order].astype(INDEX),
            np.asarray(ratings, dtype=VALUE)[found][order],
            None,
        )


def _dense_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ids and each id's position among them (0, 1, 2, ...).

    MovieLens ids are small integers, so a lookup table over 0..max is linear where
    np.unique would sort all 25 million values; other ids fall back to np.unique.
    """
    ids = np.asarray(ids)
    if len(ids) and ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < 4 * len(ids) + 1024:
        present = np.bincount(ids)
        distinct = np.flatnonzero(present)
        lookup = np.cumsum(present > 0, dtype=np.int64) - 1
        return distinct, lookup[ids].astype(INDEX)
    distinct, codes = np.unique(ids, return_inverse=True)
    return distinct, codes.astype(INDEX)


def _sorted_by_row_then_column(rows: np.ndarray, cols: np.ndarray) -> bool:
    """True when the pairs are strictly increasing by (row, column): no sort needed."""
    if len(rows) < 2:
        return True
    row_step = np.diff(rows)
    return bool(np.all((row_step > 0) | ((row_step == 0) & (np.diff(cols) > 0))))


def gather_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column indices and values of a few rows, concatenated in the order given.

    For the handful of neighbour rows a request reads, slicing the arrays directly costs
    a fraction of SciPy's fancy indexing, which validates and builds a new matrix.
    """
    starts, ends = matrix.indptr[rows], matrix.indptr[np.asarray(rows) + 1]
    if len(starts) == 1:
        return matrix.indices[starts[0] : ends[0]], matrix.data[starts[0] : ends[0]]
    slices = [slice(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    return (
        np.concatenate([matrix.indices[s] for s in slices] or [matrix.indices[:0]]),
        np.concatenate([matrix.data[s] for s in slices] or [matrix.data[:0]]),
    )


def _as_32bit(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same matrix with float32 values and, while they fit, int32 indices and offsets."""
    pointer_type = INDEX if matrix.nnz <= np.iinfo(INDEX).max else np.int64
    return wrap_csr(
        matrix.data.astype(VALUE, copy=False),
        matrix.indices.astype(pointer_type, copy=False),
        matrix.indptr.astype(pointer_type, copy=False),
        matrix.shape,
    )


def wrap_csr(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A CSR matrix over existing arrays: sorted, duplicate-free, nothing copied or checked."""
    matrix = sp.csr_matrix(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix
