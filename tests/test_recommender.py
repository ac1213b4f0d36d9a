"""The original design, checked against neighbours and scores worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from app.recommender import (
    Neighbour,
    NotFitted,
    OriginalUserKNN,
    RatingMatrix,
    UnknownUser,
    neighbours_rated,
    top,
)
from tests.tiny import TINY, frame

# Rows of the tiny matrix (movies 10, 20, 30, 40, 50):
#   user 1: 5 3 0 0 0     |u1|^2 = 34
#   user 2: 4 3 5 0 0     |u2|^2 = 50
#   user 3: 5 0 0 2 4     |u3|^2 = 45
#   user 4: 0 1 1 0 5     |u4|^2 = 27


class Pick(NamedTuple):
    """A recommended movie by MovieLens id, its score and how many neighbours rated it."""

    movie_id: int
    score: float
    neighbours_rated: int


def fit(rows: list[tuple[int, int, float]] | pd.DataFrame) -> OriginalUserKNN:
    ratings = rows if isinstance(rows, pd.DataFrame) else frame(rows)
    return OriginalUserKNN().fit(RatingMatrix.from_frame(ratings))


def recommend(model: OriginalUserKNN, user_id: int, n: int = 5, k: int | None = None) -> list[Pick]:
    """The estimator's ranking for a known user, mapped back to MovieLens ids."""
    matrix = model.matrix
    ranking = model.rank(matrix.profile(matrix.row(user_id)), n, k)
    movies = matrix.item_ids[ranking.items].tolist()
    rated = neighbours_rated(matrix, ranking).tolist()
    return [Pick(*pick) for pick in zip(movies, ranking.scores.tolist(), rated, strict=True)]


def similar_users(model: OriginalUserKNN, user_id: int, k: int | None = None) -> list[Neighbour]:
    """The estimator's neighbours of a known user, by MovieLens id."""
    matrix = model.matrix
    rows, similarities = model.neighbours(matrix.profile(matrix.row(user_id)), k)
    return [
        Neighbour(int(user), float(similarity))
        for user, similarity in zip(matrix.user_ids[rows], similarities, strict=True)
    ]


@pytest.fixture
def model() -> OriginalUserKNN:
    return fit(TINY)


def test_similar_users_are_the_highest_cosines_by_hand(model: OriginalUserKNN) -> None:
    neighbours = similar_users(model, 1, k=3)
    assert [n.user_id for n in neighbours] == [2, 3, 4]
    assert [n.similarity for n in neighbours] == pytest.approx(
        [
            29 / math.sqrt(34 * 50),  # 5*4 + 3*3
            25 / math.sqrt(34 * 45),  # 5*5
            3 / math.sqrt(34 * 27),  # 3*1
        ]
    )


def test_similar_users_excludes_the_user_and_caps_at_the_others(model: OriginalUserKNN) -> None:
    neighbours = similar_users(model, 2, k=100)
    assert [n.user_id for n in neighbours] == [1, 3, 4]
    assert neighbours[1].similarity == pytest.approx(20 / math.sqrt(50 * 45))


def test_recommend_scores_are_neighbour_means_with_unrated_as_zero(model: OriginalUserKNN) -> None:
    recs = recommend(model, 1, n=3, k=2)  # neighbours 2 and 3
    assert [(r.movie_id, r.neighbours_rated) for r in recs] == [(30, 1), (50, 1), (40, 1)]
    assert [r.score for r in recs] == pytest.approx([5 / 2, 4 / 2, 2 / 2])


def test_recommend_with_three_neighbours(model: OriginalUserKNN) -> None:
    recs = recommend(model, 1, n=2, k=3)  # neighbours 2, 3, 4
    assert [r.movie_id for r in recs] == [50, 30]
    assert [r.score for r in recs] == pytest.approx([(4 + 5) / 3, (5 + 1) / 3])
    assert [r.neighbours_rated for r in recs] == [2, 2]


def test_recommend_never_returns_movies_the_user_rated(model: OriginalUserKNN) -> None:
    for user in (1, 2, 3, 4):
        rated = {m for u, m, _ in TINY if u == user}
        assert not rated & {r.movie_id for r in recommend(model, user, n=10, k=3)}


def test_one_pass_gives_both_answers(model: OriginalUserKNN) -> None:
    # The ranking carries the neighbours it was scored from: explain() needs no second pass.
    matrix = model.matrix
    for user in (1, 2, 3, 4):
        profile = matrix.profile(matrix.row(user))
        ranking = model.rank(profile, n=3, k=2)
        rows, similarities = model.neighbours(profile, k=2)
        assert ranking.neighbours.tolist() == rows.tolist()
        assert ranking.similarities.tolist() == similarities.tolist()


def test_zero_scores_fill_the_list_in_movie_id_order(model: OriginalUserKNN) -> None:
    recs = recommend(model, 1, n=5, k=1)  # only user 2, who rated just 30 of the unseen films
    assert [(r.movie_id, r.score) for r in recs] == [(30, 5.0), (40, 0.0), (50, 0.0)]


def test_similarity_ties_go_to_the_lower_user_id() -> None:
    model = fit(
        [
            (1, 1, 5.0),
            (4, 1, 3.0),
            (4, 2, 4.0),
            (2, 1, 3.0),
            (2, 2, 4.0),
            (3, 1, 3.0),
            (3, 2, 4.0),
        ]
    )
    assert [n.user_id for n in similar_users(model, 1, k=2)] == [2, 3]


def test_score_ties_go_to_the_lower_movie_id() -> None:
    model = fit([(1, 1, 5.0), (2, 1, 5.0), (2, 9, 4.0), (2, 3, 4.0)])
    assert [r.movie_id for r in recommend(model, 1, n=2, k=1)] == [3, 9]


def test_unknown_user_names_the_range(model: OriginalUserKNN) -> None:
    with pytest.raises(UnknownUser) as info:
        recommend(model, 99)
    assert (info.value.lowest, info.value.highest, info.value.count) == (1, 4, 4)
    with pytest.raises(UnknownUser):
        similar_users(model, 10**30)


def test_unfitted_model_refuses() -> None:
    profile = RatingMatrix.from_frame(frame(TINY)).profile(0)
    with pytest.raises(NotFitted):
        OriginalUserKNN().rank(profile, 5)
    with pytest.raises(NotFitted):
        OriginalUserKNN().neighbours(profile)


def test_movie_means_are_over_all_users(model: OriginalUserKNN) -> None:
    columns, found = model.matrix.items_of(np.array([10, 30, 60]))
    assert found.tolist() == [True, True, False]
    assert model.matrix.item_mean[columns[:2]] == pytest.approx([(5 + 4 + 5) / 3, (5 + 1) / 2])
    assert model.matrix.item_count[columns[:2]].tolist() == [3, 2]


@pytest.mark.parametrize(
    ("values", "count", "expected"),
    [
        ([1.0, 3.0, 3.0, 2.0, 3.0], 2, [1, 2]),
        ([1.0, 3.0, 3.0, 2.0, 3.0], 3, [1, 2, 4]),
        ([0.0, 0.0, 0.0], 2, [0, 1]),
        ([2.0, 1.0], 5, [0, 1]),
        ([2.0, 1.0], 0, []),
    ],
)
def test_top_is_partial_selection_with_index_tie_break(
    values: list[float], count: int, expected: list[int]
) -> None:
    assert top(np.array(values), count).tolist() == expected


def reference_recommend(
    ratings: pd.DataFrame, user_id: int, n: int, k: int
) -> tuple[list[int], list[int]]:
    """The original design written the plain dense way: pivot, cosine, mean, filter, sort."""
    matrix = ratings.pivot_table(index="user_id", columns="movie_id", values="rating").fillna(0)
    sims = pd.Series(
        cosine_similarity(matrix.to_numpy())[matrix.index.get_loc(user_id)], index=matrix.index
    ).drop(user_id)
    order = np.lexsort((sims.index.to_numpy(), -sims.to_numpy()))
    neighbours = sims.index.to_numpy()[order[:k]]
    scores = matrix.loc[neighbours].mean(axis=0)
    scores = scores[matrix.loc[user_id] == 0]
    best = np.lexsort((scores.index.to_numpy(), -scores.to_numpy()))[:n]
    return neighbours.tolist(), scores.index.to_numpy()[best].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_dense_reference_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pairs = {
        (int(u), int(m))
        for u, m in zip(rng.integers(1, 60, 900), rng.integers(1, 120, 900), strict=True)
    }
    rows = [(u, m, float(rng.integers(1, 11)) / 2) for u, m in sorted(pairs)]
    ratings = frame(rows)
    model = fit(ratings)
    for user in rng.choice(ratings["user_id"].unique(), 10, replace=False):
        for n, k in ((5, 5), (10, 1), (20, 12)):
            neighbours, movies = reference_recommend(ratings, int(user), n, k)
            assert [x.user_id for x in similar_users(model, int(user), k)] == neighbours
            assert [r.movie_id for r in recommend(model, int(user), n, k)] == movies


@pytest.fixture(scope="session")
def real_ratings(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    import zipfile

    from app.data.movielens import load
    from tests.conftest import require_real_zip

    folder = tmp_path_factory.mktemp("real")
    with zipfile.ZipFile(require_real_zip()) as archive:
        archive.extractall(folder)
    return load(Path(folder)).ratings


@pytest.mark.real_data
def test_real_data_user_1_gets_unseen_movies_in_score_order(real_ratings: pd.DataFrame) -> None:
    model = fit(real_ratings)
    assert model.matrix.n_users == 610
    rated = set(real_ratings.loc[real_ratings["user_id"] == 1, "movie_id"])
    recs = recommend(model, 1, n=10, k=5)
    assert len(recs) == 10
    assert not rated & {r.movie_id for r in recs}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert all(1 <= r.neighbours_rated <= 5 for r in recs)
    neighbours = similar_users(model, 1, k=5)
    assert 1 not in [x.user_id for x in neighbours]
    assert [x.similarity for x in neighbours] == sorted(
        (x.similarity for x in neighbours), reverse=True
    )


@pytest.mark.real_data
def test_real_data_matches_the_dense_reference(real_ratings: pd.DataFrame) -> None:
    model = fit(real_ratings)
    for user in (1, 42, 414, 610):
        neighbours, movies = reference_recommend(real_ratings, user, 10, 5)
        assert [x.user_id for x in similar_users(model, user, 5)] == neighbours
        assert [r.movie_id for r in recommend(model, user, 10, 5)] == movies


def test_explain_names_the_neighbours_who_rated_each_film(model: OriginalUserKNN) -> None:
    profile = model.matrix.profile(model.matrix.row(1))
    ranking = model.rank(profile, n=3, k=2)  # neighbours 2 and 3
    reasons = model.explain(profile, ranking)
    assert [[(r.kind, r.id, r.rating) for r in film] for film in reasons] == [
        [("user", 2, 5.0)],  # movie 30
        [("user", 3, 4.0)],  # movie 50
        [("user", 3, 2.0)],  # movie 40
    ]
    assert reasons[0][0].similarity == pytest.approx(29 / math.sqrt(34 * 50))


def test_explain_puts_the_most_similar_neighbour_first(model: OriginalUserKNN) -> None:
    profile = model.matrix.profile(model.matrix.row(1))
    ranking = model.rank(profile, n=1, k=3)  # movie 50: rated by users 3 and 4
    assert [(r.id, r.rating) for r in model.explain(profile, ranking)[0]] == [(3, 4.0), (4, 5.0)]
    assert [(r.id, r.rating) for r in model.explain(profile, ranking, limit=1)[0]] == [(3, 4.0)]


def test_an_adhoc_profile_is_compared_with_everyone(model: OriginalUserKNN) -> None:
    # The same ratings as user 1, but from outside: user 1 is now its most similar user.
    profile = model.matrix.adhoc_profile(np.array([20, 10, 999]), np.array([3.0, 5.0, 4.0]))
    assert profile.row is None
    assert model.matrix.item_ids[profile.items].tolist() == [10, 20]
    rows, similarities = model.neighbours(profile, k=2)
    assert model.matrix.user_ids[rows].tolist() == [1, 2]
    assert similarities == pytest.approx([1.0, 29 / math.sqrt(34 * 50)])
    ranking = model.rank(profile, n=3, k=2)
    assert model.matrix.item_ids[ranking.items].tolist() == [30, 40, 50]
    assert ranking.scores.tolist() == pytest.approx([5 / 2, 0.0, 0.0])


def test_an_empty_adhoc_profile_gets_zero_similarities(model: OriginalUserKNN) -> None:
    profile = model.matrix.adhoc_profile(np.array([], dtype=np.int64), np.array([]))
    rows, similarities = model.neighbours(profile, k=2)
    assert model.matrix.user_ids[rows].tolist() == [1, 2]
    assert similarities.tolist() == [0.0, 0.0]


def test_the_matrix_is_32_bit_and_indexed_both_ways(model: OriginalUserKNN) -> None:
    matrix = model.matrix
    for part in (matrix.by_user, matrix.by_item):
        assert part.data.dtype == np.float32
        assert part.indices.dtype == np.int32 and part.indptr.dtype == np.int32
        assert part.has_sorted_indices
    assert (matrix.by_item.toarray() == matrix.by_user.toarray().T).all()
    assert matrix.user_norm.tolist() == pytest.approx(np.sqrt([34, 50, 45, 27]).tolist())


@pytest.mark.parametrize("seed", range(6))
def test_top_agrees_with_a_full_sort_on_large_tied_arrays(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2_000, 60_000))
    # Mostly zeros and half stars, as scores are: many ties at every cut-off.
    values = np.where(rng.random(size) < 0.9, 0.0, rng.integers(1, 11, size) / 2)
    values[rng.integers(0, size, 5)] = -np.inf
    for count in (1, 5, 10, 50, 100, 3_000):
        expected = np.lexsort((np.arange(size), -values))[:count]
        assert top(values, count).tolist() == expected.tolist()


@pytest.mark.parametrize("offset", [0, 10**9])
def test_the_matrix_does_not_depend_on_row_order_or_id_size(offset: int) -> None:
    rng = np.random.default_rng(3)
    ordered = frame([(u + offset, m + offset, r) for u, m, r in TINY])
    shuffled = ordered.iloc[rng.permutation(len(ordered))]
    a, b = RatingMatrix.from_frame(ordered), RatingMatrix.from_frame(shuffled)
    assert (
        a.user_ids.tolist()
        == b.user_ids.tolist()
        == [1 + offset, 2 + offset, 3 + offset, 4 + offset]
    )
    assert a.item_ids.tolist() == [m + offset for m in (10, 20, 30, 40, 50)]
    for part in ("by_user", "by_item"):
        left, right = getattr(a, part), getattr(b, part)
        assert (left.toarray() == right.toarray()).all()
        assert left.indices.tolist() == right.indices.tolist() and right.has_sorted_indices
    assert recommend(fit(shuffled), 1 + offset, n=3, k=2) == recommend(
        fit(ordered), 1 + offset, n=3, k=2
    )
