"""Group strategies: one list for several people from each member's predicted scores.

NumPy/SciPy only: no web, no I/O. The input is a members x films matrix of predicted scores
over the films the group may be offered (-inf where a member's algorithm has no evidence for
a film). A member's **match** for a film is its score as a share of the member's best film
on offer (0..1; scores below 0 and films without evidence count 0). It is the scale the
single-person lists already show as "Match", so a person reads "Ana 92%" the same way on
both pages; it puts every member on one scale whatever their algorithm or number of ratings
(EASE's weights and a kNN's weighted sums are not comparable, nor are the sums of a
20-rating and a 5-rating profile); and, unlike a percentile among thousands of films (where
the top ten of everyone read 99.9%), it still shows how much less one film suits a member
than another.

The strategies (`STRATEGIES`) merge the members' matches: average and least misery (the
classic ones, Masthoff 2004), average without misery (the average among films every member
matches at MISERY_THRESHOLD or more), Borda count (each member's rank of the film, the
points of a full ranking) and GFAR (Kaya, Bridge and Tintarev, RecSys 2020), which picks
films one by one for the members the list serves least so far. Which is the default is
measured (`movierec evaluate --split group`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.recommender.base import Algorithm, Ranking
from app.recommender.matrix import Profile

MISERY_THRESHOLD = 0.5
"""Average without misery keeps films every member matches at least this well."""
GFAR_TOP = 50
"""GFAR: each member's relevance is spread over their own top this many films (Borda)."""


@dataclass(frozen=True)
class GroupRanking:
    """Chosen columns of the candidate matrix, best first, and the group's score for each."""

    columns: np.ndarray
    scores: np.ndarray


def matches(scores: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """Each member's match (0..1) for each film (or only `columns`): score over their best."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[1] == 0:
        return np.zeros_like(scores)
    # maximum() turns -inf (no evidence) and negative scores into 0 in one pass.
    best = np.maximum(scores.max(axis=1, keepdims=True), 0.0)
    chosen = scores if columns is None else scores[:, columns]
    positive = np.maximum(chosen, 0.0)
    return np.divide(positive, best, out=np.zeros_like(positive), where=best > 0)


def percentiles(scores: np.ndarray) -> np.ndarray:
    """Each member's rank of each film as a share (0: their last, 1: their first; ties share)."""
    scores = np.atleast_2d(scores)
    films = scores.shape[1]
    if films <= 1:
        return np.ones_like(scores, dtype=np.float64)
    ranks = np.empty(scores.shape, dtype=np.float64)
    for member, row in enumerate(scores):
        ranks[member] = _average_ranks(row)
    return (ranks - 1.0) / (films - 1.0)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 (the least) up, equal values sharing the mean of theirs, as
    scipy.stats.rankdata's "average" gives them; scipy.stats itself took a second to import
    in every worker."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], len(values))
    shared = (starts + ends + 1) / 2.0  # the mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = shared[np.cumsum(starts_group) - 1]
    return ranks


def rank_all(algorithm: Algorithm, profile: Profile, n_items: int, k: int | None) -> Ranking:
    """The algorithm's ranking of every film it can score for the profile, best first.

    An algorithm answers a top n; asked for n = every film it returns all those with a
    finite score (each scores every film, then `unseen_top`), so no algorithm needs a
    second method. It costs one sort of the films over the top n's partial one: about
    1 ms on ml-latest-small's 9,700 films.
    """
    return algorithm.rank(profile, n_items, k)


def score_vector(ranking: Ranking, n_items: int) -> np.ndarray:
    """A full ranking's scores by matrix column: -inf for films rated or without evidence."""
    scores = np.full(n_items, -np.inf)
    scores[ranking.items] = ranking.scores
    return scores


def _best(primary: np.ndarray, secondary: np.ndarray, n: int) -> GroupRanking:
    """The n best columns by `primary`, ties by `secondary`, then the lower column.

    Only the films at or above the n-th best primary value are sorted (a partition finds
    it), not all of them.
    """
    films = len(primary)
    n = max(0, min(n, films))
    if n == 0:
        return GroupRanking(np.empty(0, dtype=np.int64), np.empty(0))
    cutoff = np.partition(primary, films - n)[films - n]
    pool = np.flatnonzero(primary >= cutoff)
    order = pool[np.lexsort((pool, -secondary[pool], -primary[pool]))][:n]
    return GroupRanking(order, primary[order])


def average(scores: np.ndarray, n: int) -> GroupRanking:
    """The films with the highest mean match over the members."""
    mean = matches(scores).mean(axis=0)
    return _best(mean, mean, n)


def least_misery(scores: np.ndarray, n: int) -> GroupRanking:
    """The films whose least happy member is happiest (ties by the mean)."""
    share = matches(scores)
    return _best(share.min(axis=0), share.mean(axis=0), n)


def average_without_misery(
    scores: np.ndarray, n: int, threshold: float = MISERY_THRESHOLD
) -> GroupRanking:
    """The mean match among films every member matches at `threshold` or more first.

    When fewer than n films pass, the others follow by their mean, so the list stays full.
    """
    share = matches(scores)
    mean = share.mean(axis=0)
    # A mean is at most 1, so 2 more for passing puts every passing film first.
    ranking = _best(mean + 2.0 * (share >= threshold).all(axis=0), mean, n)
    return GroupRanking(ranking.columns, mean[ranking.columns])


def borda(scores: np.ndarray, n: int) -> GroupRanking:
    """The films with the most Borda points (each member's rank of the film), ties by match.

    The score is the members' mean match, so every strategy's scores read alike.
    """
    points = percentiles(scores).mean(axis=0)
    ranking = _best(points, matches(scores).mean(axis=0), n)
    return GroupRanking(ranking.columns, matches(scores).mean(axis=0)[ranking.columns])


def gfar(scores: np.ndarray, n: int, top: int = GFAR_TOP) -> GroupRanking:
    """Greedy fairness-aware ranking (GFAR, Kaya et al. 2020).

    p(u, i), the chance film i pleases member u, is u's Borda points for i over their own
    top `top` films (top - rank; 0 beyond), normalised to sum to 1. Each step adds the film
    with the largest sum over members of p(u, i) times the chance that nothing chosen so
    far pleases u, so a member the list already serves counts for less. Once no film adds
    anything the rest follow by their mean match, which is also the score.
    """
    scores = np.atleast_2d(scores)
    members, films = scores.shape
    mean_match = matches(scores).mean(axis=0)
    top = min(top, films)
    points = np.zeros((members, films))
    for member in range(members):
        best = np.lexsort((np.arange(films), -scores[member]))[:top]
        best = best[np.isfinite(scores[member, best])]
        points[member, best] = np.arange(top, top - len(best), -1, dtype=np.float64)
    totals = points.sum(axis=1, keepdims=True)
    chance = np.divide(points, totals, out=np.zeros_like(points), where=totals > 0)
    unserved = np.ones(members)
    available = np.ones(films, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < min(n, films):
        gain = unserved @ chance
        gain[~available] = -1.0
        if gain.max() <= 0:
            break
        tied = np.flatnonzero(gain == gain.max())
        pick = int(tied[np.argmax(mean_match[tied])])
        chosen.append(pick)
        available[pick] = False
        unserved *= 1.0 - chance[:, pick]
    if len(chosen) < min(n, films):
        rest = np.lexsort((np.arange(films), -mean_match))
        rest = rest[available[rest]][: min(n, films) - len(chosen)]
        chosen.extend(int(column) for column in rest)
    columns = np.array(chosen, dtype=np.int64)
    return GroupRanking(columns, mean_match[columns])


Strategy = Callable[[np.ndarray, int], GroupRanking]


@dataclass(frozen=True)
class GroupStrategy:
    """A strategy with the name used in URLs and the API, a label and a sentence on it."""

    name: str
    label: str
    description: str
    rank: Strategy


STRATEGIES: dict[str, GroupStrategy] = {
    strategy.name: strategy
    for strategy in (
        GroupStrategy(
            "average",
            "Average",
            "The films the members like best on average.",
            average,
        ),
        GroupStrategy(
            "least_misery",
            "Least misery",
            "The films whose least keen member is keenest: nobody is left bored.",
            least_misery,
        ),
        GroupStrategy(
            "average_without_misery",
            "Average without misery",
            "The best on average among films every member matches at least "
            f"{MISERY_THRESHOLD:.0%}.",
            average_without_misery,
        ),
        GroupStrategy(
            "borda",
            "Borda count",
            "Each member ranks every film; the films with the best ranks summed win.",
            borda,
        ),
        GroupStrategy(
            "gfar",
            "Fair turns (GFAR)",
            "Films chosen one at a time, each for the members the list suits least so far.",
            gfar,
        ),
    )
}
"""Every group strategy by name."""
