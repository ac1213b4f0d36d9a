"""RP3beta: a three-step random walk user -> film -> user -> film, damped by popularity.

From film i a walk goes to a user who rated it (probability 1/deg(i)) and on to a film j
that user rated (1/deg(u)); each step's probability is raised to `alpha` and the result
divided by deg(j)^beta so that blockbusters do not reach everything:

    W[i, j] = (sum over users u who rated i and j of  deg(i)^-alpha * deg(u)^-alpha) / deg(j)^beta

(alpha = 1 is the plain transition probability; smaller alpha flattens it).

Only each film's `neighbours` strongest links are kept (per source film, as in the
reference implementation), and a profile scores film j as the sum of W[i, j] over the films
i it rated (binary), exactly as item kNN does with its weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from app.recommender.itemknn import BLOCK_BYTES, DEFAULT_MAX_PAIRS, ItemKNN
from app.recommender.matrix import RatingMatrix

DEFAULT_NEIGHBOURS = 200


class RP3Beta(ItemKNN):
    """Graph-based item-item weights (Paudel et al. 2017); ranks and explains as ItemKNN."""

    name = "rp3beta"
    label = "Similar films (random walk, popularity-damped)"
    description = (
        "A random walk from your films through the people who rated them, damped so that "
        "blockbusters do not crowd out everything else."
    )
    _rows_are_targets = False

    def __init__(
        self,
        neighbours: int = DEFAULT_NEIGHBOURS,
        alpha: float = 0.8,
        beta: float = 0.4,
        block_bytes: int = BLOCK_BYTES,
        max_pairs: int = DEFAULT_MAX_PAIRS,
    ) -> None:
        super().__init__(
            neighbours=neighbours, binary=True, block_bytes=block_bytes, max_pairs=max_pairs
        )
        self.alpha = alpha
        self.beta = beta

    def params(self) -> dict[str, Any]:
        """Neighbours kept per film, the walk's alpha and the damping beta."""
        return {
            "neighbours": self.neighbours,
            "alpha": self.alpha,
            "beta": self.beta,
            "block_bytes": self.block_bytes,
            "max_pairs": self.max_pairs,
        }

    def _prepare(self, matrix: RatingMatrix, items: np.ndarray) -> None:
        rows = self._columns(matrix, items)
        # Degrees count every rating, modelled film or not: the walk's probabilities are
        # those of the whole graph, only the films it may end on are fewer.
        item_degree = np.diff(rows.indptr).astype(np.float64)
        user_degree = np.diff(matrix.by_user.indptr).astype(np.float64)
        safe_item = np.maximum(item_degree, 1.0)
        # Items x users with deg(i)^-alpha, and users x items with deg(u)^-alpha.
        self._item_to_user = sp.diags(safe_item**-self.alpha) @ rows
        self._user_to_item = (
            sp.diags(np.maximum(user_degree, 1.0) ** -self.alpha) @ rows.T
        ).tocsr()
        self._damping = np.power(safe_item, -self.beta)

    def _release(self) -> None:
        self._item_to_user = self._user_to_item = sp.csr_matrix((0, 0))

    def _block(self, start: int, stop: int) -> np.ndarray:
        walk = (self._item_to_user[start:stop] @ self._user_to_item).toarray()
        return np.asarray(walk * self._damping[np.newaxis, :], dtype=np.float64)
