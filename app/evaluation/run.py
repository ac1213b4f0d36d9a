"""Fit each candidate algorithm on a split's training part and score its top-k for every test user.

Test users are those with held-out ratings. Every one of them gets a top-k list (they all
keep training ratings), which feeds coverage, popularity and latency; the accuracy averages
(precision, recall, nDCG, MAP, hit rate) are over the users with at least one relevant
held-out film (rated >= RELEVANT_RATING), since the others have nothing to find.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.group import GroupResult
from app.evaluation.metrics import (
    RELEVANT_RATING,
    UserScores,
    coverage,
    popularity_median,
    score_user,
)
from app.evaluation.split import Split
from app.evaluation.visitor import VisitorResult
from app.recommender import ALGORITHMS, Algorithm, RatingMatrix, TooLarge

Progress = Callable[[str, int, int], None]
"""Called with (what, done, total) while an algorithm ranks the test users."""

LIST_LENGTH = 10
"""How many films each test user gets; the metrics are @ this length (their k)."""


def _no_progress(what: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class Candidate:
    """An algorithm to evaluate: its registry name and constructor parameters."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Algorithm:
        """A fresh, unfitted instance."""
        return ALGORITHMS[self.name](**self.params)

    @property
    def key(self) -> str:
        """Name and parameters, e.g. `original(k=20)`."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{name}={value}" for name, value in self.params.items())
        return f"{self.name}({inner})"


@dataclass(frozen=True)
class AlgorithmResult:
    """One algorithm's scores on one split; `error` says why there are none (e.g. TooLarge)."""

    algorithm: str
    label: str
    params: dict[str, Any]
    precision: float
    recall: float
    ndcg: float
    map: float
    hit_rate: float
    coverage: float
    popularity_median: float
    users: int
    test_users: int
    fit_seconds: float
    rank_ms_median: float
    error: str = ""


@dataclass(frozen=True)
class SplitResult:
    """All algorithms' results on one split."""

    name: str
    description: str
    k: int
    train_ratings: int
    test_ratings: int
    results: list[AlgorithmResult]


@dataclass(frozen=True)
class Evaluation:
    """A whole run: when, on what, and each split's results."""

    ran_at: str
    dataset: dict[str, Any]
    k: int
    seed: int
    relevant_rating: float
    splits: list[SplitResult]
    visitor: VisitorResult | None = None
    group: GroupResult | None = None


def evaluate(
    ratings: pd.DataFrame,
    splits: Sequence[Split],
    candidates: Sequence[Candidate],
    *,
    k: int = LIST_LENGTH,
    seed: int,
    dataset: Mapping[str, Any] | None = None,
    progress: Progress = _no_progress,
) -> Evaluation:
    """Evaluate every candidate on every split at cut-off k."""
    ran_at = datetime.now(UTC).isoformat(timespec="seconds")
    description = {
        "ratings": len(ratings),
        "users": int(ratings["user_id"].nunique()),
        "movies": int(ratings["movie_id"].nunique()),
        **(dataset or {}),
    }
    return Evaluation(
        ran_at=ran_at,
        dataset=description,
        k=k,
        seed=seed,
        relevant_rating=RELEVANT_RATING,
        splits=[evaluate_split(split, candidates, k=k, progress=progress) for split in splits],
    )


def evaluate_split(
    split: Split, candidates: Sequence[Candidate], *, k: int, progress: Progress = _no_progress
) -> SplitResult:
    """Fit each candidate on the split's training matrix and score it on the held-out ratings."""
    matrix = RatingMatrix.from_frame(split.train[["user_id", "movie_id", "rating"]])
    test_users = np.unique(split.test["user_id"].to_numpy())
    liked = split.test[split.test["rating"] >= RELEVANT_RATING]
    relevant = {int(user): group.to_numpy() for user, group in liked.groupby("user_id")["movie_id"]}
    results = [
        evaluate_candidate(candidate, matrix, test_users, relevant, k=k, progress=progress)
        for candidate in candidates
    ]
    return SplitResult(
        name=split.name,
        description=split.description,
        k=k,
        train_ratings=len(split.train),
        test_ratings=len(split.test),
        results=results,
    )


def evaluate_candidate(
    candidate: Candidate,
    matrix: RatingMatrix,
    test_users: np.ndarray,
    relevant: Mapping[int, np.ndarray],
    *,
    k: int,
    progress: Progress = _no_progress,
) -> AlgorithmResult:
    """Fit, rank every test user's top k (timing each), and average the metrics."""
    algorithm = candidate.build()
    started = time.perf_counter()
    try:
        algorithm.fit(matrix)
    except TooLarge as exc:
        return _failed(candidate, algorithm, len(test_users), str(exc))
    fit_seconds = time.perf_counter() - started

    lists: list[np.ndarray] = []
    scores: list[UserScores] = []
    latencies: list[float] = []
    for done, user in enumerate(test_users, start=1):
        profile = matrix.profile(matrix.row(int(user)))
        started = time.perf_counter()
        ranking = algorithm.rank(profile, k)
        latencies.append(time.perf_counter() - started)
        lists.append(ranking.items)
        liked = relevant.get(int(user))
        if liked is not None:
            scores.append(score_user(matrix.item_ids[ranking.items], liked, k))
        progress(candidate.key, done, len(test_users))

    def mean(metric: str) -> float:
        return float(np.mean([getattr(s, metric) for s in scores])) if scores else float("nan")

    return AlgorithmResult(
        algorithm=candidate.name,
        label=algorithm.label,
        params=dict(candidate.params),
        precision=mean("precision"),
        recall=mean("recall"),
        ndcg=mean("ndcg"),
        map=mean("average_precision"),
        hit_rate=mean("hit"),
        coverage=coverage(lists, matrix.n_items),
        popularity_median=popularity_median(lists, matrix.item_count),
        users=len(scores),
        test_users=len(test_users),
        fit_seconds=fit_seconds,
        rank_ms_median=statistics.median(latencies) * 1000 if latencies else float("nan"),
    )


def _failed(
    candidate: Candidate, algorithm: Algorithm, test_users: int, error: str
) -> AlgorithmResult:
    nan = float("nan")
    return AlgorithmResult(
        algorithm=candidate.name,
        label=algorithm.label,
        params=dict(candidate.params),
        precision=nan,
        recall=nan,
        ndcg=nan,
        map=nan,
        hit_rate=nan,
        coverage=nan,
        popularity_median=nan,
        users=0,
        test_users=test_users,
        fit_seconds=nan,
        rank_ms_median=nan,
        error=error,
    )
