"""`movierec evaluate --split group`: groups drawn by hand, the default's rule, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import app.__main__ as cli
from app.engine import DEFAULT_GROUP_STRATEGY
from app.evaluation.group import (
    BASELINES,
    GroupRow,
    beats_baselines,
    choose_default,
    draw_groups,
    evaluate_groups,
    like_minded_similarity,
)
from app.evaluation.report import PUBLISHED
from app.evaluation.visitor import VisitorCase
from app.recommender.group import STRATEGIES
from app.recommender.policy import PolicyStep
from tests.conftest import make_zip

POLICY = (PolicyStep(below=None, algorithm="userknn-weighted", k=10),)
ROW_KEYS = {
    "strategy",
    "label",
    "group_size",
    "grouping",
    "ratings_per_member",
    "mean_ndcg",
    "min_ndcg",
    "groups",
}


def case(user: int, movies: list[int], ratings: list[float]) -> VisitorCase:
    return VisitorCase(user, np.array(movies), np.array(ratings), np.array([999]))


def test_like_minded_groups_gather_the_most_similar_users() -> None:
    cases = [
        case(1, [1, 2], [5.0, 5.0]),
        case(2, [1, 2], [4.0, 4.0]),  # cosine 1 with user 1
        case(3, [3, 4], [5.0, 1.0]),
        case(4, [1, 3], [5.0, 5.0]),  # cosine 1/2 with user 1, 5/sqrt(52) with user 3
    ]
    similarity = like_minded_similarity(cases)
    assert similarity[0, 1] == pytest.approx(1.0)
    assert similarity[0, 3] == pytest.approx(0.5)
    assert similarity[2, 3] == pytest.approx(25 / np.sqrt(26 * 50))
    assert similarity[0, 2] == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    for group in draw_groups(20, 3, "like-minded", similarity, rng):
        first, *rest = group
        # The second member is always the first's closest; all three distinct.
        assert rest[0] == int(np.argmax(np.where(np.arange(4) == first, -1, similarity[first])))
        assert len(set(group)) == 3
    drawn = draw_groups(50, 2, "random", similarity, np.random.default_rng(1))
    assert all(len(set(g)) == 2 for g in drawn)
    assert len({tuple(sorted(g)) for g in drawn}) == 6  # every pair of 4 users turns up


def rows_for(values: dict[str, tuple[float, float]], size: int = 2) -> list[GroupRow]:
    return [
        GroupRow(name, name, size, "random", 5, mean, least, 10)
        for name, (mean, least) in values.items()
    ]


def test_the_default_beats_both_baselines_on_both_measures_at_every_size() -> None:
    others = {name: (0.10, 0.02) for name in STRATEGIES}
    baselines = {name: (0.12, 0.03) for name in BASELINES}
    # "borda" beats them at size 2 and 3; "gfar" has the best mean but the worse minimum.
    rows = rows_for({**others, **baselines, "borda": (0.13, 0.04), "gfar": (0.20, 0.01)})
    rows += rows_for({**others, **baselines, "borda": (0.13, 0.05), "gfar": (0.20, 0.01)}, 3)
    assert choose_default(rows) == "borda" and beats_baselines(rows, "borda")
    assert not beats_baselines(rows, "gfar")
    # At size 4 nothing beats popularity: the best by sizes won, honestly not "beats all".
    rows += rows_for({**others, **baselines, "popularity": (0.5, 0.5)}, 4)
    assert choose_default(rows) == "borda" and not beats_baselines(rows, "borda")


def taste_ratings(seed: int = 7) -> pd.DataFrame:
    """80 users in two camps over 60 films: each likes their camp's films (4-5), not the other's."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, 81):
        camp = user % 2
        for movie in rng.choice(np.arange(1, 61), 25, replace=False).tolist():
            liked = (movie % 2) == camp
            rows.append((user, movie, float(rng.choice([4.0, 5.0]) if liked else 1.0)))
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


def test_the_protocol_is_seeded_and_reports_every_kind_of_group() -> None:
    ratings = taste_ratings()
    kwargs = {"sizes": (2, 3), "lengths": (5, 10), "groups": 8, "visitors": 30, "seed": 3}
    result = evaluate_groups(ratings, POLICY, **kwargs)
    names = [*STRATEGIES, *BASELINES]
    assert len(result.rows) == len(names) * 2 * 2 * 2
    assert {row.strategy for row in result.rows} == set(names)
    assert {(r.group_size, r.grouping, r.ratings_per_member) for r in result.rows} == {
        (size, grouping, length)
        for size in (2, 3)
        for grouping in ("random", "like-minded")
        for length in (5, 10)
    }
    for row in result.rows:
        assert 0 < row.groups <= 8
        assert 0 <= row.min_ndcg <= row.mean_ndcg <= 1
    # Tastes this clear: every personal strategy finds more than the most rated films.
    at_2 = {r.strategy: r.mean_ndcg for r in result.rows if r.group_size == 2}
    assert at_2["average"] > at_2["popularity"]
    assert result.default in STRATEGIES
    assert evaluate_groups(ratings, POLICY, **kwargs) == result


def test_evaluate_split_group_writes_the_group_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = taste_ratings()
    titles = "movieId,title,genres\n" + "".join(
        f"{m},Film {m} (2000),Drama\n" for m in range(1, 61)
    )
    zipped = tmp_path / "ml-camps.zip"
    zipped.write_bytes(
        make_zip(
            {
                "ratings.csv": ratings.rename(columns={"user_id": "userId", "movie_id": "movieId"})
                .assign(timestamp=964982703)
                .to_csv(index=False),
                "movies.csv": titles,
            },
            folder="ml-camps",
        )
    )
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    argv = ["evaluate", "--split", "group", "--source", str(zipped), "--visitors", "30"]
    argv += ["--groups", "5"]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "data" / "evaluation" / "latest.json").read_text())
    group = report["group"]
    assert set(group) == {
        "description",
        "sizes",
        "ratings_per_member",
        "groupings",
        "rows",
        "default",
    }
    assert group["sizes"] == [2, 3, 4, 6] and group["ratings_per_member"] == [5, 10, 20]
    assert group["groupings"] == ["random", "like-minded"]
    assert all(set(row) == ROW_KEYS for row in group["rows"])
    assert report["splits"] == []
    markdown = (tmp_path / "data" / "evaluation" / "latest.md").read_text()
    assert "## group:" in markdown and "| strategy | 2 members |" in markdown
    out = capsys.readouterr().out
    assert "Default: " in out and "like-minded groups, 20 ratings each" in out


def test_the_published_measurement_chose_the_served_default() -> None:
    published = json.loads(PUBLISHED.read_text())["group"]
    assert published["default"] == DEFAULT_GROUP_STRATEGY
    rows = [GroupRow(**row) for row in published["rows"]]
    assert beats_baselines(rows, DEFAULT_GROUP_STRATEGY)
    assert {row.group_size for row in rows} == {2, 3, 4, 6}
