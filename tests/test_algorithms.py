"""The new algorithms on the tiny matrix, with scores and orders worked out by hand."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from app.recommender import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    EASE,
    FALLBACK_ALGORITHM,
    ItemKNN,
    NotFitted,
    Popularity,
    Profile,
    RatingMatrix,
    Reason,
    RP3Beta,
    TooLarge,
    WeightedUserKNN,
    co_rated_pairs,
    create,
)
from tests.tiny import TINY, frame

# Rows of the tiny matrix (movies 10, 20, 30, 40, 50):
#   user 1: 5 3 0 0 0      user 3: 5 0 0 2 4
#   user 2: 4 3 5 0 0      user 4: 0 1 1 0 5
# Columns: 10 (5,4,5,0) |.|^2=66, 20 (3,3,0,1) 19, 30 (0,5,0,1) 26, 40 (0,0,2,0) 4,
# 50 (0,0,4,5) 41. Cosines between users 1 and 2, 3, 4: 29/sqrt(34*50), 25/sqrt(34*45),
# 3/sqrt(34*27).
S12 = 29 / math.sqrt(34 * 50)
S13 = 25 / math.sqrt(34 * 45)
S14 = 3 / math.sqrt(34 * 27)


@pytest.fixture
def matrix() -> RatingMatrix:
    return RatingMatrix.from_frame(frame(TINY))


def movie_ids(matrix: RatingMatrix, columns: np.ndarray) -> list[int]:
    return [int(m) for m in matrix.item_ids[columns]]


def user_one(matrix: RatingMatrix) -> Profile:
    return matrix.profile(matrix.row(1))


def test_registry_names_every_algorithm_and_a_default() -> None:
    assert set(ALGORITHMS) == {
        "original",
        "popularity",
        "userknn-weighted",
        "itemknn",
        "rp3beta",
        "ease",
    }
    assert DEFAULT_ALGORITHM in ALGORITHMS and FALLBACK_ALGORITHM in ALGORITHMS
    for name, factory in ALGORITHMS.items():
        algorithm = factory()
        assert algorithm.name == name and algorithm.label
        for text in (algorithm.description, algorithm.method, algorithm.reason_measure):
            assert isinstance(text, str) and text.strip()
    itemknn = create("itemknn", neighbours=7)
    assert isinstance(itemknn, ItemKNN) and itemknn.neighbours == 7
    with pytest.raises(KeyError, match="known: original"):
        create("nope")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_needs_fit_and_never_returns_rated_films(
    name: str, matrix: RatingMatrix
) -> None:
    algorithm = ALGORITHMS[name]() if name != "ease" else EASE(min_ratings=1)
    with pytest.raises(NotFitted):
        algorithm.rank(user_one(matrix), 3)
    algorithm.fit(matrix)
    for row in range(matrix.n_users):
        profile = matrix.profile(row)
        ranking = algorithm.rank(profile, 5)
        assert not set(ranking.items) & set(profile.items)
        assert list(ranking.scores) == sorted(ranking.scores, reverse=True)
        reasons = algorithm.explain(profile, ranking, limit=2)
        assert len(reasons) == len(ranking.items)
        assert all(len(r) <= 2 for r in reasons)


def test_popularity_ranks_by_count_ties_to_lower_id(matrix: RatingMatrix) -> None:
    model = Popularity().fit(matrix)
    ranking = model.rank(user_one(matrix), 3)
    # Counts: 10:3, 20:3, 30:2, 40:1, 50:2; user 1 rated 10 and 20.
    assert movie_ids(matrix, ranking.items) == [30, 50, 40]
    assert list(ranking.scores) == [2, 2, 1]
    assert model.explain(user_one(matrix), ranking)[0] == [Reason("popular", 30, 2 / 4, 3.0)]


def test_weighted_user_knn_sums_similarity_times_rating(matrix: RatingMatrix) -> None:
    model = WeightedUserKNN(k=2).fit(matrix)  # neighbours 2 and 3
    ranking = model.rank(user_one(matrix), 5)
    assert movie_ids(matrix, ranking.items) == [30, 50, 40]
    assert ranking.scores == pytest.approx([S12 * 5, S13 * 4, S13 * 2])
    three = model.rank(user_one(matrix), 2, k=3)
    assert movie_ids(matrix, three.items) == [30, 50]
    assert three.scores == pytest.approx([S12 * 5 + S14 * 1, S13 * 4 + S14 * 5])
    reasons = model.explain(user_one(matrix), ranking)
    assert [(r.kind, r.id, r.rating) for r in reasons[0]] == [("user", 2, 5.0)]
    assert [r.similarity for r in reasons[0]] == pytest.approx([S12])


def test_weighted_user_knn_centred_subtracts_each_neighbours_mean(
    matrix: RatingMatrix,
) -> None:
    model = WeightedUserKNN(k=2, center=True).fit(matrix)
    ranking = model.rank(user_one(matrix), 5)
    # Means: user 2 (4+3+5)/3 = 4, user 3 (5+2+4)/3 = 11/3.
    assert movie_ids(matrix, ranking.items) == [30, 50, 40]
    assert ranking.scores == pytest.approx([S12 * 1, S13 * (4 - 11 / 3), S13 * (2 - 11 / 3)])


def test_weighted_user_knn_adhoc_profile_is_compared_with_everyone(
    matrix: RatingMatrix,
) -> None:
    model = WeightedUserKNN(k=1).fit(matrix)
    # The same ratings as user 1, given ad hoc: user 1 itself is the nearest (cosine 1)
    # and has nothing else to offer, so nothing can be recommended.
    adhoc = matrix.adhoc_profile(np.array([20, 10]), np.array([3.0, 5.0]))
    ranking = model.rank(adhoc, 3)
    assert len(ranking.items) == 0
    assert list(ranking.neighbours) == [matrix.row(1)]
    assert model.rank(user_one(matrix), 3).neighbours.tolist() == [matrix.row(2)]


COS_10_30 = 20 / math.sqrt(66 * 26)
COS_20_30 = 16 / math.sqrt(19 * 26)
COS_10_40 = 10 / math.sqrt(66 * 4)
COS_10_50 = 20 / math.sqrt(66 * 41)
COS_20_50 = 5 / math.sqrt(19 * 41)


def test_item_knn_scores_are_rating_weighted_cosines(matrix: RatingMatrix) -> None:
    model = ItemKNN(neighbours=10, shrink=0.0).fit(matrix)
    ranking = model.rank(user_one(matrix), 5)
    assert movie_ids(matrix, ranking.items) == [30, 40, 50]
    assert ranking.scores == pytest.approx(
        [5 * COS_10_30 + 3 * COS_20_30, 5 * COS_10_40, 5 * COS_10_50 + 3 * COS_20_50]
    )
    reasons = model.explain(user_one(matrix), ranking, limit=3)
    # Contributions to 30: from 10, 5 x 0.483 = 2.41; from 20, 3 x 0.720 = 2.16.
    assert [(r.kind, r.id, r.rating) for r in reasons[0]] == [
        ("movie", 10, 5.0),
        ("movie", 20, 3.0),
    ]
    assert [r.similarity for r in reasons[0]] == pytest.approx([COS_10_30, COS_20_30])


def test_item_knn_keeps_only_each_films_nearest_neighbours(matrix: RatingMatrix) -> None:
    model = ItemKNN(neighbours=1, shrink=0.0).fit(matrix)
    # 30's nearest is 20; 40's is 50 (8/sqrt(4*41) = 0.62 > 10/sqrt(66*4) = 0.615);
    # 50's is 40. So user 1 (10, 20) reaches only 30, through 20.
    ranking = model.rank(user_one(matrix), 5)
    assert movie_ids(matrix, ranking.items) == [30]
    assert ranking.scores == pytest.approx([3 * COS_20_30])
    assert model.weights_ is not None and model.weights_.nnz == 5


def test_item_knn_shrink_damps_weak_evidence(matrix: RatingMatrix) -> None:
    model = ItemKNN(neighbours=10, shrink=10.0).fit(matrix)
    ranking = model.rank(user_one(matrix), 1)
    assert ranking.scores == pytest.approx(
        [5 * 20 / (math.sqrt(66 * 26) + 10) + 3 * 16 / (math.sqrt(19 * 26) + 10)]
    )


def test_rp3beta_walk_probabilities_by_hand(matrix: RatingMatrix) -> None:
    # Degrees: films 10:3, 20:3, 30:2, 40:1, 50:2; users 1:2, 2:3, 3:3, 4:3.
    # From 10 to 30 via user 2: 1/3 * 1/3; from 20 to 30 via users 2 and 4: 2 * 1/9, ...
    plain = RP3Beta(alpha=1.0, beta=0.0).fit(matrix)
    ranking = plain.rank(user_one(matrix), 5)
    assert movie_ids(matrix, ranking.items) == [30, 50, 40]
    assert ranking.scores == pytest.approx([3 / 9, 2 / 9, 1 / 9])
    # beta = 1 divides by the target's degree: 30 -> 1/6, 40 -> 1/9, 50 -> 1/9 (tie: 40 first).
    damped = RP3Beta(alpha=1.0, beta=1.0).fit(matrix).rank(user_one(matrix), 5)
    assert movie_ids(matrix, damped.items) == [30, 40, 50]
    assert damped.scores == pytest.approx([1 / 6, 1 / 9, 1 / 9])


def test_ease_two_films_by_hand() -> None:
    # User 1 rated A and B, user 2 only A (binary). G + I = [[3, 1], [1, 2]], det 5,
    # P = [[2, -1], [-1, 3]] / 5, B[A, B] = -P[A, B] / P[B, B] = 1/3, B[B, A] = 1/2.
    two = RatingMatrix.from_frame(frame([(1, 1, 4.0), (1, 2, 5.0), (2, 1, 3.0)]))
    model = EASE(l2=1.0, min_ratings=1, binary=True).fit(two)
    assert model.weights_ == pytest.approx(np.array([[0, 1 / 3], [1 / 2, 0]]))
    only_a = two.adhoc_profile(np.array([1]), np.array([2.0]))
    assert model.rank(only_a, 5).scores == pytest.approx([1 / 3])
    only_b = two.adhoc_profile(np.array([2]), np.array([2.0]))
    ranking = model.rank(only_b, 5)
    assert movie_ids(two, ranking.items) == [1]
    reasons = model.explain(only_b, ranking)
    assert [[(r.kind, r.id, r.rating) for r in film] for film in reasons] == [[("movie", 2, 2.0)]]
    assert reasons[0][0].similarity == pytest.approx(0.5)


def test_ease_matches_its_closed_form_on_the_tiny_matrix(matrix: RatingMatrix) -> None:
    model = EASE(l2=2.0, min_ratings=1).fit(matrix)
    x = matrix.by_user.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(5))
    b = np.eye(5) - p / np.diag(p)
    ranking = model.rank(user_one(matrix), 3)
    expected = x[0] @ b
    order = [c for c in np.argsort(-expected, kind="stable") if x[0, c] == 0]
    assert list(ranking.items) == order
    assert ranking.scores == pytest.approx(expected[order], rel=1e-5)


def test_ease_leaves_out_rarely_rated_films(matrix: RatingMatrix) -> None:
    model = EASE(l2=1.0, min_ratings=2).fit(matrix)  # 40 has one rating
    ranking = model.rank(user_one(matrix), 5)
    assert 40 not in movie_ids(matrix, ranking.items)
    assert model.columns_ is not None and len(model.columns_) == 4


def test_ease_refuses_a_budget_too_small_to_be_useful(matrix: RatingMatrix) -> None:
    with pytest.raises(TooLarge, match="holds only 2 films"):
        EASE(min_ratings=1, memory_budget=100).fit(matrix)  # 24 x 2 x 2 <= 100


def test_ease_models_the_most_rated_films_that_fit_its_budget() -> None:
    # 59,000 films (as ml-latest's catalogue) would need ~77 GiB of dense solve; a budget of
    # 300 x 300 cells keeps the 300 most rated: here films 0..299 (rated 6 times, the rest 5).
    films = 59_000
    rows = np.concatenate((np.repeat(np.arange(5), films), np.full(300, 5)))
    cols = np.concatenate((np.tile(np.arange(films), 5), np.arange(300)))
    wide = RatingMatrix.from_coordinates(
        np.arange(6), np.arange(films), rows, cols, np.full(len(rows), 4.0, dtype=np.float32)
    )
    assert EASE().max_films < films and EASE().estimate_bytes(wide) <= 2 << 30
    model = EASE(memory_budget=24 * 300 * 300)
    tracemalloc.start()
    model.fit(wide)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20
    assert model.columns_ is not None and list(model.columns_) == list(range(300))
    assert model.weights_ is not None and model.weights_.shape == (300, 300)
    ranked = model.rank(wide.adhoc_profile(np.array([0, 1, 2]), np.array([5.0, 4.0, 3.0])), 10)
    assert len(ranked.items) == 10 and set(ranked.items.tolist()) <= set(range(3, 300))


@pytest.mark.parametrize("name", ["popularity", "itemknn", "rp3beta", "ease"])
def test_item_based_adhoc_profile_ranks_as_the_same_known_user(
    name: str, matrix: RatingMatrix
) -> None:
    algorithm = create(name, min_ratings=1) if name == "ease" else create(name)
    algorithm.fit(matrix)
    adhoc = matrix.adhoc_profile(np.array([20, 10, 999]), np.array([3.0, 5.0, 4.0]))
    known = algorithm.rank(user_one(matrix), 5)
    given = algorithm.rank(adhoc, 5)
    assert list(given.items) == list(known.items)
    assert given.scores == pytest.approx(known.scores)
    assert algorithm.explain(adhoc, given) == algorithm.explain(user_one(matrix), known)


def random_matrix(users: int = 300, films: int = 400, seed: int = 7) -> RatingMatrix:
    """Ratings with Zipf-like film popularity, so that capping by popularity matters."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(films) + 50.0)
    cells = {
        (int(u), int(f))
        for u in range(users)
        for f in rng.choice(films, size=int(rng.integers(5, 60)), p=popularity / popularity.sum())
    }
    rows, cols = (np.array(side) for side in zip(*sorted(cells), strict=True))
    values = (rng.integers(1, 11, size=len(rows)) / 2).astype(np.float32)
    return RatingMatrix.from_coordinates(
        np.arange(users), np.arange(films) + 1000, rows, cols, values
    )


@pytest.mark.parametrize("name", ["itemknn", "rp3beta"])
def test_item_item_fits_model_the_most_rated_films_their_pair_limit_holds(name: str) -> None:
    matrix = random_matrix()
    limit = co_rated_pairs(matrix) // 2
    capped = create(name, neighbours=1000, max_pairs=limit)
    items = capped.modelled_items(matrix)
    by_count = np.lexsort((np.arange(matrix.n_items), -matrix.item_count))
    # The most rated films, as many as fit: one more would not.
    assert set(items.tolist()) == set(by_count[: len(items)].tolist())
    assert co_rated_pairs(matrix, items) <= limit
    assert co_rated_pairs(matrix, by_count[: len(items) + 1]) > limit
    assert 100 <= len(items) < matrix.n_items

    capped.fit(matrix)
    full = create(name, neighbours=1000).fit(matrix)
    assert capped.weights_ is not None and full.weights_ is not None
    # Among the modelled films the links are the full model's; nothing else is linked.
    inside = np.ix_(items, items)
    np.testing.assert_allclose(
        capped.weights_[inside].toarray(), full.weights_[inside].toarray(), rtol=1e-6
    )
    assert capped.weights_.nnz == np.count_nonzero(capped.weights_[inside].toarray())
    profile = matrix.profile(0)
    ranked = capped.rank(profile, 10)
    assert set(ranked.items.tolist()) <= set(items.tolist())


def test_item_knn_refuses_a_pair_limit_too_small_to_be_useful() -> None:
    with pytest.raises(TooLarge, match="holds only"):
        ItemKNN(max_pairs=10).fit(random_matrix())
