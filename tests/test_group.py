"""Group lists: the strategies worked out by hand, then Service.recommend_for_group end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from app.config import ALL_ALGORITHMS, Settings
from app.engine import (
    DEFAULT_GROUP_STRATEGY,
    InvalidRatings,
    NotReady,
    Service,
    UnknownStrategy,
)
from app.recommender.group import (
    STRATEGIES,
    average,
    average_without_misery,
    borda,
    gfar,
    least_misery,
    matches,
    percentiles,
)
from tests.conftest import require_real_zip

NO = -np.inf

# Two members, four films. Ana loves film 0 and likes 1; Ben hates 0 and likes 1 and 2.
SCORES = np.array(
    [
        [10.0, 6.0, 2.0, NO],
        [0.0, 6.0, 8.0, 1.0],
    ]
)


def test_a_match_is_the_share_of_the_members_best_film() -> None:
    assert matches(SCORES) == pytest.approx(
        np.array([[1.0, 0.6, 0.2, 0.0], [0.0, 0.75, 1.0, 0.125]])
    )
    # Negative scores count 0, and a member with nothing positive matches nothing.
    assert matches(np.array([[-1.0, 2.0], [-3.0, -1.0]])) == pytest.approx(
        np.array([[0.0, 1.0], [0.0, 0.0]])
    )


def test_percentiles_rank_each_members_films_with_ties_shared() -> None:
    assert percentiles(np.array([[3.0, 1.0, 2.0], [1.0, 1.0, NO]])) == pytest.approx(
        np.array([[1.0, 0.0, 0.5], [0.75, 0.75, 0.0]])
    )


def test_percentiles_agree_with_scipys_average_ranks() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        films = int(rng.integers(2, 60))
        scores = rng.integers(0, 6, size=(int(rng.integers(1, 6)), films)).astype(float)
        scores[rng.random(scores.shape) < 0.1] = NO
        expected = (rankdata(scores, method="average", axis=1) - 1.0) / (films - 1.0)
        assert percentiles(scores) == pytest.approx(expected)


def test_average_and_least_misery_by_hand() -> None:
    # Means: 0.5, 0.675, 0.6, 0.0625; minima: 0, 0.6, 0.2, 0.
    ranked = average(SCORES, 3)
    assert ranked.columns.tolist() == [1, 2, 0]
    assert ranked.scores == pytest.approx([0.675, 0.6, 0.5])
    miserable = least_misery(SCORES, 3)
    assert miserable.columns.tolist() == [1, 2, 0]
    assert miserable.scores == pytest.approx([0.6, 0.2, 0.0])
    # Films 0 and 3 tie at 0 for least misery; the mean breaks the tie.
    assert least_misery(SCORES, 4).columns.tolist() == [1, 2, 0, 3]
    # Matches Ana 1, .6, 0 and Ben .3, .6, 1: the best mean is film 0, the best minimum 1.
    split = np.array([[10.0, 6.0, 0.0], [3.0, 6.0, 10.0]])
    assert average(split, 1).columns.tolist() == [0]
    assert least_misery(split, 1).columns.tolist() == [1]


def test_average_without_misery_puts_films_someone_dislikes_last() -> None:
    # Matches: Ana 1, .5, .6, 1; Ben 0, 1, .8, .6. Means .5, .75, .7, .8.
    scores = np.array([[10.0, 5.0, 6.0, 10.0], [0.0, 5.0, 4.0, 3.0]])
    assert average(scores, 4).columns.tolist() == [3, 1, 2, 0]
    # At 55% films 1 (Ana's 50%) and 0 (Ben's 0%) go after those everyone matches.
    assert average_without_misery(scores, 4, threshold=0.55).columns.tolist() == [3, 2, 1, 0]
    # Nothing passes 90%: the list is by the mean.
    assert average_without_misery(scores, 2, threshold=0.9).columns.tolist() == [3, 1]


def test_borda_sums_ranks_not_sizes() -> None:
    # Ana's ranks 3,2,1,0 and Ben's 0,2,3,1 (of 3): films 1 and 2 tie on points (2.0 vs 2.0
    # sum -> 4/6 each); the mean match breaks it.
    ranked = borda(SCORES, 4)
    assert ranked.columns.tolist() == [1, 2, 0, 3]
    assert ranked.scores == pytest.approx([0.675, 0.6, 0.5, 0.0625])


def test_gfar_serves_the_member_the_list_has_served_least() -> None:
    # Matches: Ana 1, .9, 0, .5; Ben .4, .4, 1, 0. Average takes Ana's two favourites.
    scores = np.array([[10.0, 9.0, 0.0, 5.0], [4.0, 4.0, 10.0, 0.0]])
    assert average(scores, 2).columns.tolist() == [0, 1]
    # GFAR over each member's top 2: Ana's p = 2/3 (film 0), 1/3 (film 1); Ben's 2/3 (film
    # 2), 1/3 (film 0, tied with 1 at 4, the lower column). Gains 1, 1/3, 2/3: film 0. Then
    # Ana is 1/3 unserved and Ben 2/3: film 1 gains 1/9, film 2 gains 4/9.
    ranked = gfar(scores, 2, top=2)
    assert ranked.columns.tolist() == [0, 2]
    assert ranked.scores == pytest.approx([0.7, 0.5])


def test_gfar_fills_the_list_once_nobody_gains() -> None:
    ranked = gfar(SCORES, 4, top=1)
    assert sorted(ranked.columns.tolist()) == [0, 1, 2, 3]
    assert len(set(ranked.columns.tolist())) == 4


def test_every_strategy_gives_n_distinct_films_with_scores_from_0_to_1() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 200))
    scores[rng.random(scores.shape) < 0.3] = NO
    for strategy in STRATEGIES.values():
        ranked = strategy.rank(scores, 10)
        assert len(set(ranked.columns.tolist())) == 10, strategy.name
        assert ((ranked.scores >= 0) & (ranked.scores <= 1)).all(), strategy.name
        assert len(strategy.rank(scores, 500).columns) == 200, strategy.name  # every film
        assert len(strategy.rank(scores, 0).columns) == 0, strategy.name


def members_of(service: Service) -> list[list[tuple[int, float]]]:
    """The tiny data's user 1 and 4 as visitors (ratings as given), plus one with none."""
    return [[(10, 5.0), (20, 3.0)], [(20, 1.0), (30, 1.0), (50, 5.0)], []]


async def built(settings: Settings) -> Service:
    service = Service(settings)
    service.start()
    await service.loaded(60)
    return service


async def test_no_film_any_member_rated_or_set_aside_is_offered(
    settings: Settings, tiny_zip: Path
) -> None:
    service = await built(settings.replace(source=str(tiny_zip)))
    try:
        answer = await service.recommend_for_group(members_of(service), n=10)
        offered = [film.movie_id for film in answer.films]
        assert offered == [40]  # 60 has no ratings; every other film was rated
        assert answer.strategy == DEFAULT_GROUP_STRATEGY
        for film in answer.films:
            assert len(film.matches) == 3 and film.matches[2] is None
            assert all(0 <= m <= 1 for m in film.matches[:2] if m is not None)
            assert 0 <= film.score <= 1
        aside = await service.recommend_for_group(members_of(service), n=10, exclude={40})
        assert 40 not in [film.movie_id for film in aside.films]
    finally:
        await service.stop()


async def test_a_group_without_ratings_gets_the_most_rated_films(
    settings: Settings, tiny_zip: Path
) -> None:
    service = await built(settings.replace(source=str(tiny_zip)))
    try:
        answer = await service.recommend_for_group([[], []], n=3)
        # Counts: 10 and 20 rated 3 times, 30 and 50 twice: ties to the lower id.
        assert [film.movie_id for film in answer.films] == [10, 20, 30]
        assert "no member has rated" in answer.strategy_label
        assert answer.films[0].score == pytest.approx(1.0)
        assert answer.films[2].score == pytest.approx(2 / 3)
        assert all(film.matches == (None, None) for film in answer.films)
        assert answer.films[0].reasons[0].kind == "popular"
        assert (await service.recommend_for_group([], n=2)).films[0].movie_id == 10
    finally:
        await service.stop()


async def test_bad_input_is_refused_with_the_member_named(
    settings: Settings, tiny_zip: Path
) -> None:
    service = Service(settings.replace(source=str(tiny_zip)))
    with pytest.raises(NotReady):
        await service.recommend_for_group([[(10, 5.0)]])
    service.start()
    await service.loaded(60)
    try:
        with pytest.raises(UnknownStrategy, match="choose one of average, least_misery"):
            await service.recommend_for_group([[(10, 5.0)]], strategy="loudest")
        with pytest.raises(InvalidRatings, match=r"members\[1\]\.ratings\[0\].*no film"):
            await service.recommend_for_group([[(10, 5.0)], [(999, 4.0)]])
        with pytest.raises(InvalidRatings, match=r"members\[0\]\.ratings\[1\]\.rating"):
            await service.recommend_for_group([[(10, 5.0), (20, 7.0)]])
    finally:
        await service.stop()


def test_the_strategies_are_listed_default_first(settings: Settings) -> None:
    listed = Service(settings).group_strategies()
    assert listed[0].name == DEFAULT_GROUP_STRATEGY
    assert {s.name for s in listed} == set(STRATEGIES)
    assert all(s.label and s.description.endswith(".") for s in listed)


@pytest.mark.real_data
async def test_a_real_group_list_names_every_member_and_explains_each_film(
    settings: Settings,
) -> None:
    service = await built(
        settings.replace(source=str(require_real_zip()), algorithms=ALL_ALGORITHMS)
    )
    try:
        await service.settled(120)
        fans = [(260, 5.0), (1196, 5.0), (1210, 4.5), (1, 4.0)]  # Star Wars, Toy Story
        dramas = [(318, 5.0), (356, 4.5), (593, 4.5), (2571, 5.0), (296, 4.0)]
        many = [(movie, 4.0) for movie in (1, 2, 3, 5, 6, 7, 10, 11, 16, 17, 21, 25)]
        members = [fans, dramas, many, []]
        rated = {movie for member in members for movie, _ in member}
        for strategy in STRATEGIES:
            answer = await service.recommend_for_group(members, n=10, strategy=strategy)
            assert len(answer.films) == 10, strategy
            assert not rated & {film.movie_id for film in answer.films}
            assert answer.algorithm == "userknn-weighted, ease"  # the visitor policy's picks
            for film in answer.films:
                assert film.title and film.reasons, (strategy, film)
                assert film.matches[3] is None
                assert all(0 <= m <= 1 for m in film.matches[:3] if m is not None)
    finally:
        await service.stop()
