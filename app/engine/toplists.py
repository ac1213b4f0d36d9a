"""Known users' lists, built once: each user's best films by the default algorithm.

`movierec build` ranks every known user once (EASE's `rank_users`, a block of users at a
time on every core) and writes the lists into the snapshot beside the fit. A server then
answers a known user's default request (no filters, n up to LENGTH) by slicing the list,
and assembles titles and reasons as for a computed one; the list is the computed ranking to
the bit (tests/test_toplists.py checks every user of ml-latest-small). A snapshot without
lists (an older build) serves as before, computing each answer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.engine.queries import MAX_N
from app.recommender import EASE, Algorithm, Ranking, RatingMatrix

log = logging.getLogger(__name__)

LENGTH = MAX_N
"""Films kept per user: the longest list a request may ask for."""

BLOCK_USERS = 512
"""Users ranked together: their scores (512 x 9,459 float32 at 25M) are 19 MiB a block."""

PREFIX = "toplists."


@dataclass(frozen=True, eq=False)
class TopLists:
    """Every known user's best films by one fitted algorithm, by matrix row.

    `items` are matrix columns (users x LENGTH, int32) best first and `scores` their float32
    scores; a list shorter than LENGTH (a user who rated nearly every film) ends in -inf.
    """

    algorithm: str
    items: np.ndarray
    scores: np.ndarray

    @property
    def length(self) -> int:
        """How many films each list holds at most."""
        return int(self.items.shape[1])

    def ranking(self, row: int, n: int) -> Ranking:
        """The first n films of the user in matrix row `row`, as the algorithm ranks them."""
        scores = self.scores[row, :n].astype(np.float64)
        shown = np.isfinite(scores)
        return Ranking(self.items[row, :n][shown].astype(np.int64), scores[shown])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays a snapshot holds for these lists."""
        prefix = f"{PREFIX}{self.algorithm}."
        return {f"{prefix}items": self.items, f"{prefix}scores": self.scores}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], algorithm: str) -> TopLists | None:
        """The lists of `algorithm` in a snapshot's arrays (mapped, not copied), if it has them."""
        prefix = f"{PREFIX}{algorithm}."
        items, scores = arrays.get(f"{prefix}items"), arrays.get(f"{prefix}scores")
        if items is None or scores is None:
            return None
        return cls(algorithm, items, scores)


def add_toplists(
    algorithm: Algorithm, matrix: RatingMatrix, arrays: dict[str, np.ndarray]
) -> dict[str, float]:
    """Add every known user's list by `algorithm` to a snapshot's `arrays`, if it can rank them.

    The seconds it took, as a build phase ("toplists"), or nothing.
    """
    if not isinstance(algorithm, EASE):
        return {}
    started = time.monotonic()
    written = build_toplists(algorithm, matrix).to_arrays()
    arrays.update(written)
    took = time.monotonic() - started
    size = sum(array.nbytes for array in written.values())
    log.info("Known users' lists ranked in %.2fs (%.1f MiB)", took, size / 2**20)
    return {"toplists": took}


def workers() -> int:
    """Threads the lists are built on: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_toplists(
    algorithm: Algorithm, matrix: RatingMatrix, length: int = LENGTH, threads: int | None = None
) -> TopLists:
    """Rank every user of `matrix` by `algorithm` (fitted on it): its `length` best films each.

    Blocks of BLOCK_USERS run on `threads` threads (every core by default): the sparse
    product and the partition release the GIL.
    """
    if not isinstance(algorithm, EASE):
        raise TypeError(f"{algorithm.name} cannot rank users in blocks")
    users = matrix.n_users
    items = np.full((users, length), -1, dtype=np.int32)
    scores = np.full((users, length), -np.inf, dtype=np.float32)

    def rank(start: int) -> None:
        block = slice(start, min(start + BLOCK_USERS, users))
        best, best_scores = algorithm.rank_users(block, length)
        items[block, : best.shape[1]] = best
        scores[block, : best.shape[1]] = best_scores

    with ThreadPoolExecutor(threads or workers(), thread_name_prefix="toplists") as pool:
        # list() so that an exception in any block is raised here.
        list(pool.map(rank, range(0, users, BLOCK_USERS)))
    return TopLists(algorithm.name, items, scores)
