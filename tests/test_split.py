"""Per-user splits: 20% held out, seeded, disjoint, the latest held out in the temporal one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from app.evaluation.split import (
    Split,
    holdout_counts,
    random_holdout,
    temporal_holdout,
)


@pytest.fixture
def ratings() -> pd.DataFrame:
    """Users 1-5 with 10 ratings each, user 6 with 3, user 7 with 1; shuffled timestamps."""
    rng = np.random.default_rng(0)
    rows = []
    for user, count in [(1, 10), (2, 10), (3, 10), (4, 10), (5, 10), (6, 3), (7, 1)]:
        movies = rng.choice(100, size=count, replace=False)
        times = rng.permutation(count) * 1000 + user
        rows += [
            (user, int(m), float(rng.integers(1, 6)), int(t))
            for m, t in zip(movies, times, strict=True)
        ]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_id"], frame["movie_id"], strict=True))


def test_holdout_counts_round_half_up_and_keep_one_for_training() -> None:
    assert holdout_counts(np.array([10, 3, 2, 1, 7]), 0.2).tolist() == [2, 1, 0, 0, 1]
    assert holdout_counts(np.array([5]), 1.0).tolist() == [4]


@pytest.mark.parametrize("make", [random_holdout, temporal_holdout])
def test_twenty_percent_per_user_disjoint_and_complete(
    make: Callable[[pd.DataFrame], Split], ratings: pd.DataFrame
) -> None:
    split = make(ratings)
    held = split.test.groupby("user_id").size().to_dict()
    assert held == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 1}
    assert not pairs(split.train) & pairs(split.test)
    assert pairs(split.train) | pairs(split.test) == pairs(ratings)
    assert set(split.test["user_id"]) <= set(split.train["user_id"])


def test_random_holdout_is_deterministic_with_its_seed(ratings: pd.DataFrame) -> None:
    first = random_holdout(ratings, seed=3)
    again = random_holdout(ratings.sample(frac=1.0, random_state=1), seed=3)
    other = random_holdout(ratings, seed=4)
    assert pairs(first.test) == pairs(again.test)
    assert pairs(first.test) != pairs(other.test)
    assert "seed 3" in first.description


def test_temporal_holdout_holds_out_each_users_latest(ratings: pd.DataFrame) -> None:
    split = temporal_holdout(ratings)
    latest_train = split.train.groupby("user_id")["timestamp"].max()
    earliest_test = split.test.groupby("user_id")["timestamp"].min()
    assert (earliest_test > latest_train[earliest_test.index]).all()
    with pytest.raises(ValueError, match="timestamp"):
        temporal_holdout(ratings.drop(columns="timestamp"))
