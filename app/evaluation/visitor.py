"""The new-visitor protocol: how good are the lists for someone who has rated only a few films?

1. Hold out whole users: `visitors` of them (seeded) leave the training matrix, so they are
   truly new, as a visitor on /rate is. Everyone else keeps all their ratings.
2. Each visitor's ratings are split as the random split does (`fraction` held out, same
   seed): the held-out ones rated >= RELEVANT_RATING are what a good list finds; the rest
   are the films the visitor could rate, in the order they would: the starter grid's films
   first (draw `starters`, as the page offers them), else at random (draw `random`).
3. For each profile length N, the first N of those ratings make an ad-hoc profile
   (`matrix.adhoc_profile`, as the page does), ranked against every remaining user, and
   the top k is scored with the usual metrics. A shorter profile is a prefix of a longer one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.metrics import RELEVANT_RATING, UserScores, score_user
from app.evaluation.split import DEFAULT_FRACTION, random_holdout
from app.recommender import Algorithm, Profile, RatingMatrix, TooLarge, create
from app.recommender.policy import PolicyStep, policy_step
from app.recommender.starters import STARTER_STRATEGY, STRATEGIES, starter_items

DEFAULT_VISITORS = 150
PROFILE_LENGTHS = (3, 5, 10, 20)
GRID_SIZE = 24
"""Films in the starter grid (the rating page's STARTERS)."""
POLICY = "policy"
"""The column name of what the rating page gives: the visitor policy's choice per length."""

Ranker = Callable[[Profile], np.ndarray]
"""A profile -> its top-k matrix columns, best first."""
Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class VisitorSplit:
    """Training ratings without the visitors, and the visitors' ratings to draw and to find."""

    visitors: np.ndarray
    train: pd.DataFrame
    pool: pd.DataFrame
    held: pd.DataFrame


@dataclass(frozen=True)
class VisitorCase:
    """One visitor: the films they rate in order (`movie_ids`, `ratings`) and what to find."""

    user_id: int
    movie_ids: np.ndarray
    ratings: np.ndarray
    relevant: np.ndarray


def visitor_holdout(
    ratings: pd.DataFrame,
    visitors: int = DEFAULT_VISITORS,
    fraction: float = DEFAULT_FRACTION,
    seed: int = 42,
) -> VisitorSplit:
    """Choose `visitors` users (seeded) and split their ratings into a pool and a held-out part."""
    users = np.unique(ratings["user_id"].to_numpy())
    chosen = np.sort(
        np.random.default_rng(seed).choice(users, min(visitors, len(users)), replace=False)
    )
    split = random_holdout(ratings, fraction, seed)
    columns = ["user_id", "movie_id", "rating"]

    def of_visitors(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame["user_id"].isin(chosen), columns].reset_index(drop=True)

    train = ratings.loc[~ratings["user_id"].isin(chosen), columns].reset_index(drop=True)
    return VisitorSplit(chosen, train, of_visitors(split.train), of_visitors(split.test))


def draw_cases(split: VisitorSplit, first: Iterable[int], seed: int) -> list[VisitorCase]:
    """Each visitor's pool in a seeded random order with the films in `first` moved ahead.

    Visitors with nothing relevant held out are left out: they have nothing to find.
    """
    first = set(int(movie) for movie in first)
    rng = np.random.default_rng(seed)
    liked = split.held[split.held["rating"] >= RELEVANT_RATING]
    relevant = {int(u): group.to_numpy() for u, group in liked.groupby("user_id")["movie_id"]}
    pools = {int(u): group for u, group in split.pool.groupby("user_id")}
    cases = []
    for user in split.visitors.tolist():
        pool = pools.get(user)
        if pool is None:
            continue
        order = rng.permutation(len(pool))
        movies = pool["movie_id"].to_numpy()[order]
        ahead = np.fromiter((movie in first for movie in movies.tolist()), bool, len(movies))
        order = np.concatenate((order[ahead], order[~ahead]))
        if user in relevant:
            cases.append(
                VisitorCase(
                    user,
                    pool["movie_id"].to_numpy()[order],
                    pool["rating"].to_numpy()[order],
                    relevant[user],
                )
            )
    return cases


@dataclass(frozen=True)
class VisitorCell:
    """One ranker's mean scores for visitors with `ratings` ratings."""

    algorithm: str
    ratings: int
    ndcg: float
    precision: float
    recall: float
    map: float
    hit_rate: float
    users: int
    rank_ms_median: float


@dataclass(frozen=True)
class VisitorRow:
    """Every ranker's scores at one profile length."""

    ratings: int
    cells: list[VisitorCell]


@dataclass(frozen=True)
class VisitorTable:
    """Rows = profile lengths, columns = rankers, for one way of drawing the profiles."""

    draw: str
    description: str
    algorithms: list[str]
    rows: list[VisitorRow]


@dataclass(frozen=True)
class VisitorResult:
    """The new-visitor evaluation: tables per draw, the policy and the starter grids compared."""

    name: str
    description: str
    k: int
    visitors: int
    cases: int
    lengths: list[int]
    grid_size: int
    starter_strategy: str
    policy: list[dict[str, Any]]
    tables: list[VisitorTable]
    grids: list[VisitorTable]
    imported: VisitorTable | None = None
    """Whole histories brought as an import, beside the same users known (with `movies`)."""


def score_cases(
    matrix: RatingMatrix,
    cases: Sequence[VisitorCase],
    rank: Ranker,
    length: int,
    k: int,
    name: str = "",
) -> VisitorCell:
    """Profile each visitor by their first `length` ratings, rank, and average the metrics."""
    scores: list[UserScores] = []
    latencies: list[float] = []
    for case in cases:
        profile = matrix.adhoc_profile(case.movie_ids[:length], case.ratings[:length])
        started = time.perf_counter()
        items = rank(profile)
        latencies.append(time.perf_counter() - started)
        scores.append(score_user(matrix.item_ids[items], case.relevant, k))

    def mean(metric: str) -> float:
        return float(np.mean([getattr(s, metric) for s in scores])) if scores else float("nan")

    return VisitorCell(
        algorithm=name,
        ratings=length,
        ndcg=mean("ndcg"),
        precision=mean("precision"),
        recall=mean("recall"),
        map=mean("average_precision"),
        hit_rate=mean("hit"),
        users=len(scores),
        rank_ms_median=statistics.median(latencies) * 1000 if latencies else float("nan"),
    )


def table(
    matrix: RatingMatrix,
    cases: Sequence[VisitorCase],
    rankers: Mapping[str, Callable[[int], Ranker]],
    lengths: Sequence[int],
    k: int,
    *,
    draw: str,
    description: str,
    progress: Progress = _no_progress,
) -> VisitorTable:
    """Score every ranker (made per profile length) at every length."""
    rows = []
    for done, length in enumerate(lengths, start=1):
        cells = [
            score_cases(matrix, cases, make(length), length, k, name)
            for name, make in rankers.items()
        ]
        rows.append(VisitorRow(length, cells))
        progress(f"visitors ({draw})", done, len(lengths))
    return VisitorTable(draw, description, list(rankers), rows)


def evaluate_visitors(
    ratings: pd.DataFrame,
    algorithms: Sequence[str],
    *,
    policy: Sequence[PolicyStep] = (),
    lengths: Sequence[int] = PROFILE_LENGTHS,
    visitors: int = DEFAULT_VISITORS,
    seed: int = 42,
    k: int = 10,
    progress: Progress = _no_progress,
    movies: pd.DataFrame | None = None,
) -> VisitorResult:
    """The whole protocol: each algorithm (its own defaults) and the policy, per draw and length.

    `grids` compares the starter strategies: the policy's scores with profiles drawn from each
    strategy's grid first. With `movies` (the release's, with IMDb ids), `imported` has whole
    histories brought as an import beside the same users known (app/evaluation/imported.py).
    """
    split = visitor_holdout(ratings, visitors, seed=seed)
    matrix = RatingMatrix.from_frame(split.train)
    needed = list(dict.fromkeys([*algorithms, *(step.algorithm for step in policy)]))
    fitted: dict[str, Algorithm] = {}
    for name in needed:
        try:
            fitted[name] = create(name).fit(matrix)
        except TooLarge:
            continue

    def fixed(algorithm: Algorithm, step_k: int | None = None) -> Callable[[int], Ranker]:
        return lambda length: lambda profile: algorithm.rank(profile, k, step_k).items

    def by_policy(length: int) -> Ranker:
        step = policy_step(policy, length)
        algorithm = fitted[step.algorithm]
        return lambda profile: algorithm.rank(profile, k, step.k).items

    rankers = {name: fixed(fitted[name]) for name in algorithms if name in fitted}
    if policy:
        rankers[POLICY] = by_policy
    grids = {s: matrix.item_ids[starter_items(matrix, GRID_SIZE, s)] for s in STRATEGIES}
    draws = {
        "starters": (
            grids[STARTER_STRATEGY],
            f"profiles from the starter grid's films first ({GRID_SIZE} {STARTER_STRATEGY} "
            "films), then the visitor's other films at random",
        ),
        "random": (np.empty(0, np.int64), "profiles of random films the visitor rated"),
    }
    tables = [
        table(
            matrix,
            draw_cases(split, first, seed),
            rankers,
            lengths,
            k,
            draw=draw,
            description=description,
            progress=progress,
        )
        for draw, (first, description) in draws.items()
    ]
    compared = []
    if policy:
        for strategy, first in grids.items():
            compared.append(
                table(
                    matrix,
                    draw_cases(split, first, seed),
                    {POLICY: by_policy},
                    lengths,
                    k,
                    draw=strategy,
                    description=f"{GRID_SIZE} {strategy} films as the starter grid",
                )
            )
    imported = None
    if movies is not None:
        # Imported here: it imports this module's types.
        from app.evaluation.imported import imported_table

        imported = imported_table(split, fitted, list(rankers), movies, k, seed)
        progress("visitors (imported)", 1, 1)
    cases = draw_cases(split, (), seed)
    return VisitorResult(
        name="visitor",
        description=(
            f"new visitors: {len(split.visitors)} users held out whole (seed {seed}), profiled "
            f"from N of their ratings, scored against {DEFAULT_FRACTION:.0%} of their ratings "
            "held out"
        ),
        k=k,
        visitors=len(split.visitors),
        cases=len(cases),
        lengths=list(lengths),
        grid_size=GRID_SIZE,
        starter_strategy=STARTER_STRATEGY,
        policy=[step._asdict() for step in policy],
        tables=tables,
        grids=compared,
        imported=imported,
    )
