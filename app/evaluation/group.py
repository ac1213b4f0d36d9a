"""The group protocol: how well does one list suit every member of a group?

1. Hold out whole users as the new-visitor protocol does (app/evaluation/visitor.py): they
   leave the training matrix, their ratings split into the films they could rate (drawn
   as a visitor would: the starter grid's films first, then at random) and a held-out part.
2. Draw groups of each size from them, seeded: `random` ones, and `like-minded` ones (a
   random first member, then each time the user most similar, by cosine over the ratings
   they could give, to the members so far).
3. Each member gives their first N ratings; each is scored over every film as the engine
   scores a member (the visitor policy's algorithm, `rank_all`). Films any member rated are
   never offered. What a member would enjoy: their held-out films rated >= RELEVANT_RATING
   that no member rated.
4. For the group's top k: the mean over members of nDCG@k and the least-satisfied member's
   nDCG@k, averaged over the groups (members with nothing left to find are left out).
Baselines: `popularity` (the most rated films on offer) and `one member picks` (the first
member's own list, without the films the others rated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.evaluation.metrics import score_user
from app.evaluation.visitor import (
    DEFAULT_VISITORS,
    GRID_SIZE,
    VisitorCase,
    draw_cases,
    visitor_holdout,
)
from app.recommender import Algorithm, RatingMatrix, TooLarge, create
from app.recommender.group import STRATEGIES, rank_all, score_vector
from app.recommender.policy import PolicyStep, policy_step
from app.recommender.starters import STARTER_STRATEGY, starter_items

GROUP_SIZES = (2, 3, 4, 6)
RATINGS_PER_MEMBER = (5, 10, 20)
GROUPINGS = ("random", "like-minded")
GROUPS_PER_CELL = 200
POPULARITY = "popularity"
ONE_PICKS = "one_member_picks"
BASELINES = {POPULARITY: "Most rated films", ONE_PICKS: "One member picks"}

Progress = Callable[[str, int, int], None]


def _no_progress(what: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class GroupRow:
    """One strategy's mean and least-satisfied member's nDCG for one kind of group."""

    strategy: str
    label: str
    group_size: int
    grouping: str
    ratings_per_member: int
    mean_ndcg: float
    min_ndcg: float
    groups: int


@dataclass(frozen=True)
class GroupResult:
    """The group evaluation as the report's JSON gives it (the /about charts read it)."""

    description: str
    sizes: list[int]
    ratings_per_member: list[int]
    groupings: list[str]
    rows: list[GroupRow]
    default: str


def like_minded_similarity(cases: Sequence[VisitorCase]) -> np.ndarray:
    """Cosine similarity between the held-out users over the ratings they could give."""
    ids = np.unique(np.concatenate([case.movie_ids for case in cases]))
    rows = np.repeat(np.arange(len(cases)), [len(case.movie_ids) for case in cases])
    columns = np.searchsorted(ids, np.concatenate([case.movie_ids for case in cases]))
    values = np.concatenate([case.ratings for case in cases]).astype(np.float64)
    matrix = sp.csr_matrix((values, (rows, columns)), shape=(len(cases), len(ids)))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    dots = (matrix @ matrix.T).toarray()
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = dots / np.outer(norms, norms)
    cosine[~np.isfinite(cosine)] = 0.0
    return np.asarray(cosine)


def draw_groups(
    count: int, size: int, grouping: str, similarity: np.ndarray, rng: np.random.Generator
) -> list[list[int]]:
    """`count` groups of `size` case indices: at random, or like-minded (greedy by cosine)."""
    users = len(similarity)
    groups = []
    for _ in range(count):
        if grouping == "random":
            groups.append([int(u) for u in rng.choice(users, size, replace=False)])
            continue
        members = [int(rng.integers(users))]
        while len(members) < size:
            closeness = similarity[members].mean(axis=0)
            closeness[members] = -np.inf
            members.append(int(np.argmax(closeness)))
        groups.append(members)
    return groups


@dataclass
class _Tally:
    mean: list[float]
    least: list[float]


def _group_ndcg(
    matrix: RatingMatrix, columns: np.ndarray, relevant: Sequence[np.ndarray], k: int
) -> tuple[float, float] | None:
    """Mean and least member nDCG@k of a list (members with nothing to find left out)."""
    recommended = matrix.item_ids[columns]
    scores = [score_user(recommended, found, k).ndcg for found in relevant if len(found)]
    if not scores:
        return None
    return float(np.mean(scores)), float(min(scores))


def evaluate_groups(
    ratings: pd.DataFrame,
    policy: Sequence[PolicyStep],
    *,
    sizes: Sequence[int] = GROUP_SIZES,
    lengths: Sequence[int] = RATINGS_PER_MEMBER,
    groupings: Sequence[str] = GROUPINGS,
    groups: int = GROUPS_PER_CELL,
    visitors: int = DEFAULT_VISITORS,
    seed: int = 42,
    k: int = 10,
    progress: Progress = _no_progress,
) -> GroupResult:
    """The whole protocol: every strategy and baseline, per grouping, size and ratings given."""
    split = visitor_holdout(ratings, visitors, seed=seed)
    matrix = RatingMatrix.from_frame(split.train)
    fitted: dict[str, Algorithm] = {}
    for step in policy:
        if step.algorithm not in fitted:
            try:
                fitted[step.algorithm] = create(step.algorithm).fit(matrix)
            except TooLarge:
                continue
    grid = matrix.item_ids[starter_items(matrix, GRID_SIZE, STARTER_STRATEGY)]
    cases = draw_cases(split, grid, seed)
    similarity = like_minded_similarity(cases)
    names = {**{s.name: s.label for s in STRATEGIES.values()}, **BASELINES}
    rows: list[GroupRow] = []
    plan = [(g, s, n) for g in groupings for s in sizes for n in lengths]
    for done, (grouping, size, length) in enumerate(plan, start=1):
        rng = np.random.default_rng([seed, size, GROUPINGS.index(grouping)])
        drawn = draw_groups(groups, size, grouping, similarity, rng)
        tallies = _score_groups(matrix, fitted, policy, cases, drawn, length, k, names)
        rows += [
            GroupRow(
                name,
                names[name],
                size,
                grouping,
                length,
                float(np.mean(tally.mean)) if tally.mean else float("nan"),
                float(np.mean(tally.least)) if tally.least else float("nan"),
                len(tally.mean),
            )
            for name, tally in tallies.items()
        ]
        progress("groups", done, len(plan))
    return GroupResult(
        description=(
            f"groups of {', '.join(map(str, sizes))} drawn from {len(cases)} users held out "
            f"whole (seed {seed}), {groups} groups each, random or like-minded; each member "
            f"gives N ratings as a visitor would; nDCG@{k} of the group's list against each "
            "member's held-out films rated >= 4 that no member rated: the members' mean and "
            "the least-satisfied member's"
        ),
        sizes=list(sizes),
        ratings_per_member=list(lengths),
        groupings=list(groupings),
        rows=rows,
        default=choose_default(rows),
    )


def _score_groups(
    matrix: RatingMatrix,
    fitted: dict[str, Algorithm],
    policy: Sequence[PolicyStep],
    cases: Sequence[VisitorCase],
    drawn: Sequence[Sequence[int]],
    length: int,
    k: int,
    names: dict[str, str],
) -> dict[str, _Tally]:
    step = policy_step(policy, length)
    algorithm = fitted[step.algorithm]
    scored: dict[int, np.ndarray] = {}

    def scores_of(member: int) -> np.ndarray:
        if member not in scored:
            case = cases[member]
            profile = matrix.adhoc_profile(case.movie_ids[:length], case.ratings[:length])
            ranking = rank_all(algorithm, profile, matrix.n_items, step.k)
            scored[member] = score_vector(ranking, matrix.n_items)
        return scored[member]

    tallies = {name: _Tally([], []) for name in names}
    popularity = matrix.item_count.astype(np.float64)
    for members in drawn:
        offered = np.ones(matrix.n_items, dtype=bool)
        for member in members:
            columns, found = matrix.items_of(cases[member].movie_ids[:length])
            offered[columns[found]] = False
        candidates = np.flatnonzero(offered)
        given = set(np.concatenate([cases[m].movie_ids[:length] for m in members]).tolist())
        relevant = [
            np.array([m for m in cases[member].relevant.tolist() if m not in given])
            for member in members
        ]
        grid = np.vstack([scores_of(member)[candidates] for member in members])
        lists = {name: strategy.rank(grid, k).columns for name, strategy in STRATEGIES.items()}
        lists[POPULARITY] = np.lexsort((candidates, -popularity[candidates]))[:k]
        lists[ONE_PICKS] = np.lexsort((candidates, -grid[0]))[:k]
        for name, columns in lists.items():
            measured = _group_ndcg(matrix, candidates[columns], relevant, k)
            if measured is not None:
                tallies[name].mean.append(measured[0])
                tallies[name].least.append(measured[1])
    return tallies


def by_size(rows: Sequence[GroupRow]) -> dict[int, dict[str, tuple[float, float]]]:
    """Each strategy's mean and least-member nDCG per group size, over groupings and N."""
    sums: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for row in rows:
        sums.setdefault(row.group_size, {}).setdefault(row.strategy, []).append(
            (row.mean_ndcg, row.min_ndcg)
        )
    return {
        size: {
            name: (float(np.mean([m for m, _ in pairs])), float(np.mean([m for _, m in pairs])))
            for name, pairs in strategies.items()
        }
        for size, strategies in sums.items()
    }


def _beats(at_size: dict[str, tuple[float, float]], strategy: str) -> bool:
    mean, least = at_size[strategy]
    return all(mean > at_size[b][0] and least > at_size[b][1] for b in BASELINES)


def choose_default(rows: Sequence[GroupRow]) -> str:
    """The strategy that beats both baselines on both measures at the most group sizes.

    At each size the measures are averaged over the groupings and the ratings given. Ties
    (for instance several that beat them at every size) go to the higher sum of the two
    measures over every size.
    """
    sizes = by_size(rows)

    def merit(name: str) -> tuple[int, float]:
        won = sum(_beats(at_size, name) for at_size in sizes.values())
        return won, sum(sum(at_size[name]) for at_size in sizes.values())

    return max(STRATEGIES, key=merit)


def beats_baselines(rows: Sequence[GroupRow], strategy: str) -> bool:
    """Whether `strategy` beats both baselines on both measures at every group size."""
    return all(_beats(at_size, strategy) for at_size in by_size(rows).values())
