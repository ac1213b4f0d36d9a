"""The new-visitor protocol (worked out by hand on tiny data), the visitor policy, the starter
grid, `movierec evaluate --split visitor` and the visitor table on /about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import app.__main__ as cli
from app.config import ALL_ALGORITHMS, Settings
from app.engine import Service, VisitRequest
from app.engine.choice import VISITOR_POLICY, visitor_step
from app.evaluation.visitor import (
    POLICY,
    PolicyStep,
    VisitorSplit,
    draw_cases,
    evaluate_visitors,
    policy_step,
    score_cases,
    visitor_holdout,
)
from app.recommender import EASE, Profile, RatingMatrix, WeightedUserKNN, create
from app.recommender.starters import starter_items

from .conftest import parse, texts
from .tiny import TINY, frame

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol


def hand_split() -> VisitorSplit:
    """User 2 is the visitor: films 10 (4) and 20 (3) to rate, 30 (5) held out."""
    ratings = frame(TINY)
    return VisitorSplit(
        visitors=np.array([2]),
        train=ratings[ratings["user_id"] != 2].reset_index(drop=True),
        pool=frame([(2, 10, 4.0), (2, 20, 3.0)]),
        held=frame([(2, 30, 5.0)]),
    )


def test_the_visitor_rates_the_starter_films_first_and_is_scored_on_the_held_out_ones() -> None:
    (case,) = draw_cases(hand_split(), first=[20], seed=7)
    assert case.user_id == 2
    assert case.movie_ids.tolist() == [20, 10]
    assert case.ratings.tolist() == [3.0, 4.0]
    assert case.relevant.tolist() == [30]


def test_visitors_with_nothing_relevant_held_out_are_left_out() -> None:
    split = hand_split()
    low = VisitorSplit(split.visitors, split.train, split.pool, frame([(2, 30, 3.5)]))
    assert draw_cases(low, first=[], seed=0) == []


def test_popularity_scores_for_one_and_two_ratings_worked_out_by_hand() -> None:
    # Without user 2, films 10, 20 and 50 have two ratings each, 30 and 40 one.
    split = hand_split()
    matrix = RatingMatrix.from_frame(split.train)
    cases = draw_cases(split, first=[20], seed=7)
    popularity = create("popularity").fit(matrix)

    def rank(profile: Profile) -> np.ndarray:
        return popularity.rank(profile, 3).items

    # One rating (film 20): the list is 10, 50, 30 -> the held-out 30 third.
    one = score_cases(matrix, cases, rank, 1, 3, "popularity")
    assert one.ndcg == pytest.approx(1 / np.log2(4))
    assert (one.precision, one.recall, one.hit_rate) == pytest.approx((1 / 3, 1.0, 1.0))
    assert one.map == pytest.approx(1 / 3)
    assert one.users == 1
    # Two ratings (20, then 10): the list is 50, 30, 40 -> 30 second.
    two = score_cases(matrix, cases, rank, 2, 3, "popularity")
    assert two.ndcg == pytest.approx(1 / np.log2(3))
    assert two.map == pytest.approx(1 / 2)


def test_holdout_removes_the_visitors_from_training_and_keeps_everyone_else() -> None:
    ratings = frame(TINY)
    split = visitor_holdout(ratings, visitors=2, fraction=0.5, seed=3)
    assert len(split.visitors) == 2
    assert not split.train["user_id"].isin(split.visitors).any()
    others = ratings[~ratings["user_id"].isin(split.visitors)]
    assert len(split.train) == len(others)
    theirs = ratings[ratings["user_id"].isin(split.visitors)]
    drawn = set(map(tuple, split.pool.to_numpy().tolist())) | set(
        map(tuple, split.held.to_numpy().tolist())
    )
    assert drawn == set(map(tuple, theirs.to_numpy().tolist()))
    assert len(split.pool) + len(split.held) == len(theirs)
    # Half of each visitor's ratings held out (rounding half up, one always kept).
    held = split.held.groupby("user_id").size().to_dict()
    sizes = theirs.groupby("user_id").size().to_dict()
    assert held == {u: min(int(np.floor(n * 0.5 + 0.5)), n - 1) for u, n in sizes.items()}
    again = visitor_holdout(ratings, visitors=2, fraction=0.5, seed=3)
    assert again.visitors.tolist() == split.visitors.tolist()
    assert again.held.equals(split.held)


def test_the_policy_column_is_the_chosen_algorithm_at_each_length() -> None:
    ratings = frame(TINY)
    policy = (PolicyStep(2, "popularity"), PolicyStep(None, "original", None))
    result = evaluate_visitors(
        ratings, ["original", "popularity"], policy=policy, lengths=(1, 2), visitors=1, seed=5, k=3
    )
    (by_starters, at_random) = result.tables
    assert (by_starters.draw, at_random.draw) == ("starters", "random")
    assert by_starters.algorithms == ["original", "popularity", POLICY]
    for row in by_starters.rows:
        cells = {cell.algorithm: cell for cell in row.cells}
        chosen = "popularity" if row.ratings < 2 else "original"
        assert cells[POLICY].ndcg == cells[chosen].ndcg or (
            np.isnan(cells[POLICY].ndcg) and np.isnan(cells[chosen].ndcg)
        )
    assert [grid.draw for grid in result.grids] == ["popular", "divisive"]
    assert result.policy == [
        {"below": 2, "algorithm": "popularity", "k": None},
        {"below": None, "algorithm": "original", "k": None},
    ]


def test_policy_picks_by_the_number_of_ratings() -> None:
    for count in (0, 1, 3, 5, 9):
        assert visitor_step(count) == PolicyStep(10, WeightedUserKNN.name, 30)
    for count in (10, 20, 500):
        assert visitor_step(count).algorithm == EASE.name
    table = (PolicyStep(3, "a"), PolicyStep(6, "b"), PolicyStep(None, "c"))
    assert [policy_step(table, n).algorithm for n in (0, 2, 3, 5, 6, 100)] == list("aabbcc")
    assert VISITOR_POLICY[-1].below is None


def test_the_divisive_grid_prefers_films_people_disagree_on() -> None:
    matrix = RatingMatrix.from_frame(frame(TINY))
    # Counts: 10, 20, 50 three ratings... 10 (5, 4, 5), 20 (3, 3, 1), 50 (4, 5), 30 (5, 1).
    popular = matrix.item_ids[starter_items(matrix, 3, "popular")].tolist()
    assert popular == [10, 20, 30]
    divisive = matrix.item_ids[starter_items(matrix, 2, "divisive")].tolist()
    # 30: 2 x sd(5, 1) = 4.0; 20: 3 x sd(3, 3, 1) = 2.83; 10: 3 x 0.47 = 1.41; 50: 2 x 0.5.
    assert divisive == [30, 20]
    with pytest.raises(ValueError, match="unknown starter strategy"):
        starter_items(matrix, 2, "sideways")


async def test_a_visitor_without_a_choice_gets_the_policy_and_a_known_user_the_default(
    settings: Settings, tiny_zip: Path
) -> None:
    service = Service(settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS))
    service.start()
    await service.settled()
    pairs = [(10, 5.0), (20, 3.0)]
    answer, _ = await service.recommend_for_ratings(pairs, k=5)
    assert answer.algorithm == WeightedUserKNN.name
    assert answer.k == 30  # the policy's neighbourhood, not the request's
    visit = await service.visit(VisitRequest(ratings=pairs))
    assert visit.value.results is not None
    assert visit.value.results.algorithm == WeightedUserKNN.name
    chosen, _ = await service.recommend_for_ratings(pairs, k=5, algorithm="ease")
    assert (chosen.algorithm, chosen.k) == (EASE.name, 5)
    known = await service.recommend(1)
    assert known.value.algorithm == EASE.name
    assert visitor_step(12).algorithm == EASE.name  # the tiny release has too few films for 12
    chosen, _ = await service.recommend_for_ratings(pairs, algorithm="original")
    assert chosen.algorithm == "original"
    await service.stop()


async def test_about_shows_the_visitor_table(client: TestClientProtocol) -> None:
    tree = parse(await (await client.get("/about")).get_data(as_text=True))
    (starters, _) = tree.css("table.visitor-table")
    assert starters.attributes["data-draw"] == "starters"
    headers = texts(starters, "thead th")
    assert headers[0] == "Ratings given" and headers[-1] == "/rate"
    assert {"ease", "userknn-weighted", "popularity"} <= set(headers)
    assert texts(starters, "tbody th") == ["3", "5", "10", "20"]
    assert all(len(row.css("td")) == len(headers) - 1 for row in starters.css("tbody tr"))
    policy = texts(tree, ".visitor-policy")[0]
    assert "fewer than 10 ratings" in policy
    assert len(tree.css("table.grid-table tbody tr")) == 4


def test_evaluate_split_visitor_writes_the_visitor_table(
    tiny_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    argv = ["evaluate", "--source", str(tiny_zip), "--split", "visitor", "--visitors", "1"]
    assert cli.main([*argv, "--n", "3", "--out", str(out)]) == 0
    report = json.loads((out / "latest.json").read_text())
    assert report["splits"] == []
    visitor = report["visitor"]
    assert visitor["visitors"] == 1 and visitor["lengths"] == [3, 5, 10, 20]
    assert visitor["policy"][0] == {"below": 10, "algorithm": "userknn-weighted", "k": 30}
    (table, _) = visitor["tables"]
    assert [row["ratings"] for row in table["rows"]] == [3, 5, 10, 20]
    assert table["algorithms"][-1] == POLICY
    assert "## visitor" in (out / "latest.md").read_text()
    assert "ratings given" in capsys.readouterr().out
