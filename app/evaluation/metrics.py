"""Top-k metrics with binary relevance, per user, and list-level coverage and popularity.

For one user, `recommended` is the ranked list (best first, at most k long) and `relevant`
the held-out movies rated at or above the relevance threshold. Precision divides by k even
when fewer than k films were recommended, so a short list is not rewarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

RELEVANT_RATING = 4.0


@dataclass(frozen=True)
class UserScores:
    """One user's precision, recall, nDCG, average precision and hit at k."""

    precision: float
    recall: float
    ndcg: float
    average_precision: float
    hit: float


def score_user(recommended: np.ndarray, relevant: np.ndarray, k: int) -> UserScores:
    """All per-user metrics at k; `relevant` must not be empty.

    nDCG: DCG = sum of 1/log2(position + 1) over the relevant films among the first k, over
    the ideal DCG of min(k, |relevant|) relevant films at the top. AP@k: the mean of
    precision@i at each relevant position i <= k, over min(k, |relevant|).
    """
    if len(relevant) == 0:
        raise ValueError("score_user needs at least one relevant film")
    ranked = np.asarray(recommended)[:k]
    hits = np.isin(ranked, relevant)
    positions = np.arange(1, len(ranked) + 1)
    found = int(hits.sum())
    ideal = min(k, len(relevant))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(discounts[: len(ranked)][hits].sum())
    precision_at_hits = np.cumsum(hits)[hits] / positions[hits]
    return UserScores(
        precision=found / k,
        recall=found / len(relevant),
        ndcg=dcg / float(discounts[:ideal].sum()),
        average_precision=float(precision_at_hits.sum()) / ideal,
        hit=1.0 if found else 0.0,
    )


def coverage(recommendations: Iterable[np.ndarray], catalogue_size: int) -> float:
    """Distinct recommended films over the films in the catalogue (the training matrix)."""
    lists = [np.asarray(r) for r in recommendations]
    if catalogue_size <= 0:
        return 0.0
    distinct = np.unique(np.concatenate(lists)) if lists else np.empty(0)
    return len(distinct) / catalogue_size


def popularity_median(recommendations: Iterable[np.ndarray], popularity: np.ndarray) -> float:
    """Median popularity over every recommendation made (a film counts once per list it is in).

    `recommendations` hold matrix columns and `popularity[column]` each film's number of
    training ratings; NaN when nothing was recommended.
    """
    lists = [np.asarray(r, dtype=np.int64) for r in recommendations]
    columns = np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)
    if len(columns) == 0:
        return float("nan")
    return float(np.median(popularity[columns]))
