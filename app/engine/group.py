"""One list for a group: each member scored as a visitor, merged by a group strategy.

Each member with ratings is an ad-hoc profile answered by the visitor policy's algorithm for
their number of ratings (app/engine/choice.py), exactly as /rate would answer them alone,
but over every film rather than a top n (`rank_all`: films without evidence score -inf,
i.e. last). Films any member rated and the films set aside are never offered;
the strategies of app/recommender/group.py merge the rest. Blocking: the Service runs it
off the event loop.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.data.catalogue import Movie
from app.engine.answers import REASONS_PER_FILM, Because
from app.engine.choice import choose_for_visitor
from app.engine.model import Model
from app.engine.queries import InvalidRatings, Ratings
from app.engine.status import AlgorithmStatus
from app.recommender import Algorithm, Profile, Ranking, Reason
from app.recommender.group import (
    STRATEGIES,
    GroupStrategy,
    matches,
    rank_all,
    score_vector,
)

DEFAULT_GROUP_STRATEGY = "average"
"""Measured with `movierec evaluate --split group` (README, Evaluation)."""
POPULAR_LABEL = "Most rated films (no member has rated a film yet)"


class UnknownStrategy(ValueError):
    """No group strategy has this name; the message lists the ones there are."""


@dataclass(frozen=True)
class GroupStrategyInfo:
    """A group strategy as pages and the API list it."""

    name: str
    label: str
    description: str


@dataclass(frozen=True)
class GroupFilm:
    """One film of the group's list.

    `score` is the group's match (0..1: the members' mean match, or for least misery the
    lowest; in the most rated list, the film's ratings over the first film's); `matches`
    each member's predicted match (the film's score as a share of their best film on offer,
    0..1) in member order, None for a member with no ratings (or only ratings of films
    nobody else rated, which say nothing about the others).
    """

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    score: float
    matches: tuple[float | None, ...]
    reasons: tuple[Because, ...]
    imdb_url: str | None = None
    tmdb_url: str | None = None


@dataclass(frozen=True)
class GroupRecommendations:
    """The group's list, the strategy that made it and the algorithms behind the members."""

    strategy: str
    strategy_label: str
    algorithm: str
    films: tuple[GroupFilm, ...]


def group_strategies() -> list[GroupStrategyInfo]:
    """Every group strategy, the default first."""
    ordered = sorted(STRATEGIES.values(), key=lambda s: s.name != DEFAULT_GROUP_STRATEGY)
    return [GroupStrategyInfo(s.name, s.label, s.description) for s in ordered]


def group_strategy(name: str | None) -> GroupStrategy:
    """The strategy called `name` (None: the default); UnknownStrategy otherwise."""
    name = DEFAULT_GROUP_STRATEGY if name is None else name
    strategy = STRATEGIES.get(name)
    if strategy is None:
        raise UnknownStrategy(
            f"Unknown group strategy {name!r}; choose one of {', '.join(STRATEGIES)}."
        )
    return strategy


@dataclass(frozen=True)
class _Scored:
    """One member with ratings: algorithm, profile, full ranking, scores of the films on offer."""

    position: int
    algorithm: Algorithm
    profile: Profile
    ranking: Ranking
    scores: np.ndarray


def recommend_group(
    model: Model,
    availability: Mapping[str, AlgorithmStatus],
    members: Sequence[Sequence[tuple[int, float]]],
    n: int,
    strategy: GroupStrategy,
    exclude: Collection[int] = (),
) -> GroupRecommendations:
    """The group's n films by `strategy` (blocking); InvalidRatings naming the member."""
    checked = [_checked(model, index, pairs) for index, pairs in enumerate(members)]
    matrix = model.matrix
    offered = np.ones(matrix.n_items, dtype=bool)
    for ratings in checked:
        columns, found = matrix.items_of(np.array(ratings.movie_ids, dtype=np.int64))
        offered[columns[found]] = False
    if exclude:
        columns, found = matrix.items_of(np.fromiter(map(int, exclude), dtype=np.int64))
        offered[columns[found]] = False
    candidates = np.flatnonzero(offered)
    scored = [
        member
        for index, ratings in enumerate(checked)
        if len(ratings)
        and (member := _score(model, availability, index, ratings, candidates)) is not None
    ]
    n = max(0, min(n, len(candidates)))
    if not scored:
        return _popular(model, strategy.name, candidates, len(members), n)
    grid = np.vstack([member.scores for member in scored])
    ranking = strategy.rank(grid, n)
    shown = matches(grid, ranking.columns)
    columns = candidates[ranking.columns]
    reasons = _reasons(model, scored, columns)
    films = []
    for place, column in enumerate(columns.tolist()):
        per_member: list[float | None] = [None] * len(members)
        for row, member in enumerate(scored):
            per_member[member.position] = float(shown[row, place])
        films.append(
            _film(model, column, float(ranking.scores[place]), tuple(per_member), reasons[place])
        )
    algorithms = dict.fromkeys(member.algorithm.name for member in scored)
    return GroupRecommendations(strategy.name, strategy.label, ", ".join(algorithms), tuple(films))


def _checked(model: Model, index: int, pairs: Sequence[tuple[int, float]]) -> Ratings:
    try:
        return model.check_ratings(pairs)
    except InvalidRatings as error:
        raise InvalidRatings(f"members[{index}].{error}") from None


def _score(
    model: Model,
    availability: Mapping[str, AlgorithmStatus],
    index: int,
    ratings: Ratings,
    candidates: np.ndarray,
) -> _Scored | None:
    """The member's scores of the candidates; None when their films give no evidence at all."""
    choice = choose_for_visitor(model, availability, None, len(ratings))
    profile = model.profile_for(ratings)
    if len(profile.items) == 0:
        return None
    ranking = rank_all(choice.algorithm, profile, model.matrix.n_items, choice.k)
    if len(ranking.items) == 0:
        return None
    scores = score_vector(ranking, model.matrix.n_items)
    return _Scored(index, choice.algorithm, profile, ranking, scores[candidates])


def _reasons(
    model: Model, scored: Sequence[_Scored], columns: np.ndarray
) -> list[tuple[Because, ...]]:
    """Each film's reasons: the members' strongest in turn, one of each member first."""
    per_member = [
        member.algorithm.explain(
            member.profile,
            _ranking_of(member, columns),
            limit=REASONS_PER_FILM,
        )
        for member in scored
    ]
    merged: list[tuple[Reason, ...]] = []
    for place in range(len(columns)):
        lists = [reasons[place] if place < len(reasons) else [] for reasons in per_member]
        picked: dict[tuple[str, int], Reason] = {}
        for depth in range(REASONS_PER_FILM):
            for reasons in lists:
                if depth < len(reasons) and len(picked) < REASONS_PER_FILM:
                    picked.setdefault((reasons[depth].kind, reasons[depth].id), reasons[depth])
        merged.append(tuple(picked.values()))
    return [tuple(_because(model, reason) for reason in film) for film in merged]


def _ranking_of(member: _Scored, columns: np.ndarray) -> Ranking:
    """The group's films as a ranking the member's algorithm explains (with its neighbours)."""
    full = member.ranking
    return Ranking(columns, np.zeros(len(columns)), full.neighbours, full.similarities)


def _popular(
    model: Model, strategy: str, candidates: np.ndarray, members: int, n: int
) -> GroupRecommendations:
    """The most rated films on offer, when no member has rated anything yet."""
    matrix = model.matrix
    counts = matrix.item_count[candidates]
    order = np.lexsort((candidates, -counts))[:n]
    most = max(int(counts[order[0]]), 1) if len(order) else 1
    share = matrix.item_count / max(matrix.n_users, 1)
    films = []
    for place in order.tolist():
        column = int(candidates[place])
        reason = Reason(
            "popular", int(matrix.item_ids[column]), float(share[column]), _mean(model, column)
        )
        films.append(
            _film(
                model,
                column,
                float(counts[place]) / most,
                (None,) * members,
                (Because("popular", reason.id, None, reason.similarity, reason.rating),),
            )
        )
    return GroupRecommendations(strategy, POPULAR_LABEL, "popularity", tuple(films))


def _mean(model: Model, column: int) -> float:
    mean = float(model.matrix.item_mean[column])
    return 0.0 if np.isnan(mean) else mean


def _film(
    model: Model,
    column: int,
    score: float,
    member_matches: tuple[float | None, ...],
    reasons: tuple[Because, ...],
) -> GroupFilm:
    movie_id = int(model.matrix.item_ids[column])
    # A rated film missing from the movies file still gets a row, under its id.
    movie = model.catalogue.get(movie_id) or Movie(movie_id, f"Movie {movie_id}", None, ())
    return GroupFilm(
        movie_id=movie_id,
        title=movie.title,
        year=movie.year,
        genres=movie.genres,
        score=score,
        matches=member_matches,
        reasons=reasons,
        imdb_url=movie.imdb_url,
        tmdb_url=movie.tmdb_url,
    )


def _because(model: Model, reason: Reason) -> Because:
    """A reason with the rated film's title (as app/engine/answers.py gives them)."""
    title = None
    if reason.kind == "movie":
        movie = model.catalogue.get(reason.id)
        title = movie.title if movie else f"Movie {reason.id}"
    return Because(reason.kind, reason.id, title, reason.similarity, reason.rating)
