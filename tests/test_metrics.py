"""Top-k metrics on lists worked out by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from app.evaluation.metrics import UserScores, coverage, popularity_median, score_user

L3 = 1 / math.log2(3)  # discount at position 2
L6 = 1 / math.log2(6)  # discount at position 5


def test_hits_at_positions_two_and_five() -> None:
    scores = score_user(np.array([1, 2, 3, 4, 5]), np.array([2, 5, 9]), k=5)
    # Every field, in UserScores' order: precision, recall, nDCG, average precision, hit.
    assert dataclasses.astuple(scores) == pytest.approx(
        (2 / 5, 2 / 3, (L3 + L6) / (1 + L3 + 0.5), (1 / 2 + 2 / 5) / 3, 1.0)
    )
    assert scores.hit == 1.0


def test_the_cut_off_limits_the_list_and_the_ideal() -> None:
    scores = score_user(np.array([1, 2, 3, 4, 5]), np.array([2, 5, 9]), k=3)
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.ndcg == pytest.approx(L3 / (1 + L3 + 0.5))
    assert scores.average_precision == pytest.approx((1 / 2) / 3)
    # One relevant film: the ideal DCG is 1 and AP divides by 1.
    one = score_user(np.array([4, 7]), np.array([7]), k=3)
    assert (one.ndcg, one.average_precision) == pytest.approx((L3, 1 / 2))


def test_a_short_list_is_not_rewarded_by_precision() -> None:
    scores = score_user(np.array([7]), np.array([7]), k=10)
    assert (scores.precision, scores.recall, scores.ndcg, scores.average_precision) == (
        pytest.approx(0.1),
        1.0,
        pytest.approx(1.0),
        1.0,
    )


def test_no_hit_scores_zero_and_no_relevant_film_is_refused() -> None:
    scores = score_user(np.array([1, 2]), np.array([3]), k=2)
    assert scores == UserScores(0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        score_user(np.array([1]), np.array([], dtype=np.int64), k=2)


def test_coverage_counts_distinct_films_over_the_catalogue() -> None:
    assert coverage([np.array([0, 1]), np.array([1, 2])], 10) == pytest.approx(0.3)
    assert coverage([], 10) == 0.0


def test_popularity_median_counts_each_recommendation() -> None:
    popularity = np.array([10, 20, 30])
    # Recommended 0, 1, 1, 2 -> 10, 20, 20, 30 -> median 20.
    assert popularity_median([np.array([0, 1]), np.array([1, 2])], popularity) == 20
    assert math.isnan(popularity_median([np.array([], dtype=np.int64)], popularity))
