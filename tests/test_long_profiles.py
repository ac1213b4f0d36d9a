"""Long ad-hoc profiles (issue 21): a whole history is checked as arrays and scored exactly.

A visitor may send 10,000 ratings. They are checked as arrays when they are all valid (the
first problem is still named when one is not), and EASE adds the rated films' rows of its
weights in place rather than gathering a copy of them: the same scores as the closed form.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.data.catalogue import Catalogue
from app.engine.queries import InvalidRatings, Ratings
from app.recommender import EASE, RatingMatrix
from tests.tiny import frame


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """12,000 films with ids 1, 3, 5, ...: every even id is unknown."""
    import pandas as pd

    ids = np.arange(1, 24_000, 2)
    movies = pd.DataFrame(
        {"title": [f"Film {i}" for i in ids], "year": 2000, "genres": "Drama"},
        index=pd.Index(ids, name="movie_id"),
    )
    return Catalogue.from_frame(movies)


def history(size: int, seed: int = 3) -> list[tuple[int, float]]:
    """`size` distinct known films with half-star ratings (ints and floats), shuffled."""
    rng = random.Random(seed)
    films = rng.sample(range(1, 24_000, 2), size)
    return [(film, rng.choice([1, 2.5, 3, 4.5, 5, 0.5])) for film in films]


def test_a_whole_valid_history_is_checked_and_ordered_by_film(catalogue: Catalogue) -> None:
    pairs = history(10_000)
    ratings = Ratings.checked(pairs, catalogue)
    assert list(ratings.pairs()) == sorted((m, float(r)) for m, r in pairs)
    assert all(type(m) is int for m in ratings.movie_ids)
    assert all(type(r) is float for r in ratings.values)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((4_000, 4.0), r"ratings\[6000\]\.movie_id: there is no film with id 4000"),
        ((3, 4.25), r"ratings\[6000\]\.rating must be from 0.5 to 5.0"),
        ((3, True), r"ratings\[6000\]\.rating"),
        ((3, float("inf")), r"ratings\[6000\]\.rating"),
        ((2**70 + 1, 4.0), r"ratings\[6000\]\.movie_id: there is no film"),
        ((np.int64(3), 4.0), r"ratings\[6000\]\.movie_id must be a whole number"),
    ],
)
def test_one_bad_pair_in_a_long_history_is_named(
    catalogue: Catalogue, bad: tuple[int, float], message: str
) -> None:
    pairs = [pair for pair in history(8_000) if pair[0] != 3]
    pairs.insert(6_000, bad)
    with pytest.raises(InvalidRatings, match=message):
        Ratings.checked(pairs, catalogue)


def test_a_film_rated_twice_in_a_long_history_is_named(catalogue: Catalogue) -> None:
    pairs = history(5_000)
    pairs.append((pairs[10][0], 3.0))
    with pytest.raises(InvalidRatings, match=r"ratings\[5000\]: film \d+ is rated twice"):
        Ratings.checked(pairs, catalogue)


def test_ease_scores_a_long_profile_as_its_closed_form() -> None:
    # 300 users x 400 films, about a third rated; a visitor who rated 250 of them.
    rng = np.random.default_rng(5)
    rows, columns = np.nonzero(rng.random((300, 400)) < 0.3)
    stars = rng.integers(1, 11, size=len(rows)) / 2
    ratings = [
        (int(u) + 1, int(m) + 1, float(r)) for u, m, r in zip(rows, columns, stars, strict=True)
    ]
    matrix = RatingMatrix.from_frame(frame(ratings))
    ease = EASE(l2=50.0, min_ratings=1).fit(matrix)
    films = np.sort(rng.choice(matrix.n_items, 250, replace=False))
    given = rng.integers(1, 11, size=250) / 2
    profile = matrix.adhoc_profile(matrix.item_ids[films], given)
    ranking = ease.rank(profile, 20)
    dense = np.zeros(matrix.n_items)
    dense[films] = given
    expected = dense @ ease.fitted_arrays()["weights"].astype(np.float64)
    expected[films] = -np.inf
    assert ranking.scores == pytest.approx(expected[ranking.items], rel=1e-5, abs=1e-5)
    assert set(ranking.items.tolist()) == set(np.argsort(-expected)[:20].tolist())
