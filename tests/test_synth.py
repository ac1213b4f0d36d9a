"""The synthetic data generator: MovieLens-shaped, valid for the loader, and reproducible."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from app.data.movielens import load

SYNTH = Path(__file__).resolve().parents[1] / "bench" / "synth.py"


@pytest.fixture(scope="module")
def synth() -> ModuleType:
    """bench/synth.py imported as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("synth", SYNTH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_set(synth: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 ratings with ml-25m's proportions, as a folder and a zip."""
    out = tmp_path_factory.mktemp("synth") / "synth-20k"
    synth.main(["--ratings", "20000", "--seed", "3", "--out", str(out), "--zip"])
    return out


def test_shape_is_scaled_from_ml25m(synth: ModuleType) -> None:
    assert synth.Shape.scaled(25_000_095) == synth.Shape(162_541, 59_047, 25_000_095)
    small = synth.Shape.scaled(20_000)
    assert small.users == 130
    assert small.movies >= 4 * 20_000 / small.users


def test_small_set_has_the_promised_shape(synth: ModuleType, small_set: Path) -> None:
    ratings = pd.read_csv(small_set / "ratings.csv")
    movies = pd.read_csv(small_set / "movies.csv")
    shape = synth.Shape.scaled(20_000)
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert len(ratings) == 20_000
    assert ratings["userId"].nunique() == shape.users
    assert len(movies) == shape.movies
    assert ratings["movieId"].between(1, shape.movies).all()
    assert ratings.groupby("userId").size().min() >= 20
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings.equals(ratings.sort_values(["userId", "movieId"], ignore_index=True))
    assert set(ratings["rating"]) <= {v / 2 for v in range(1, 11)}
    assert 3.2 < ratings["rating"].mean() < 3.8
    assert ratings["rating"].mode()[0] == 4.0
    assert ratings["timestamp"].between(synth.FIRST_TIMESTAMP, synth.LAST_TIMESTAMP).all()
    assert movies["title"].iloc[0].startswith("Synthetic Film 1 (")


def test_popularity_is_zipf_like_at_ml25m_size(synth: ModuleType) -> None:
    shape = synth.Shape.scaled(25_000_095)
    rng = np.random.default_rng(0)
    counts = synth.user_activity(shape, rng)
    popularity = synth.movie_popularity(shape, rng)
    assert popularity.sum() == pytest.approx(1.0)
    assert popularity.max() > 100 * np.median(popularity)
    # Each user rates the top movie unless all their draws miss it; ml-25m's has ~81k ratings.
    expected_top = np.sum(1 - (1 - popularity.max()) ** counts)
    assert 65_000 < expected_top < 100_000


def test_the_loader_reads_it_with_the_promised_titles_and_genres(
    synth: ModuleType, small_set: Path
) -> None:
    dataset = load(small_set, with_timestamps=True)
    assert len(dataset.ratings) == 20_000
    first = dataset.movies.iloc[0]
    assert first["title"] == "Synthetic Film 1"
    assert 1920 <= first["year"] < 2020
    assert set("|".join(dataset.movies["genres"]).split("|")) <= set(synth.GENRES)


def test_same_seed_gives_the_same_bytes(synth: ModuleType, small_set: Path, tmp_path: Path) -> None:
    again = tmp_path / "synth-20k"
    synth.main(["--ratings", "20000", "--seed", "3", "--out", str(again), "--zip"])
    for name in ("ratings.csv", "movies.csv"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes()
    zipped = small_set.with_name("synth-20k.zip")
    assert again.with_name("synth-20k.zip").read_bytes() == zipped.read_bytes()


def test_another_seed_gives_other_ratings(
    synth: ModuleType, small_set: Path, tmp_path: Path
) -> None:
    other = synth.generate(synth.Shape.scaled(20_000), 4, tmp_path / "other")
    assert (other / "ratings.csv").read_bytes() != (small_set / "ratings.csv").read_bytes()


def test_impossible_shapes_are_refused(synth: ModuleType) -> None:
    with pytest.raises(ValueError, match="cannot be spread"):
        synth.Shape(users=10, movies=1000, ratings=100).check()
    with pytest.raises(ValueError, match="too few"):
        synth.Shape(users=10, movies=30, ratings=1000).check()


def test_user_activity_sums_exactly_within_bounds(synth: ModuleType) -> None:
    shape = synth.Shape(users=500, movies=400, ratings=40_000)
    counts = synth.user_activity(shape, np.random.default_rng(0))
    assert counts.sum() == 40_000
    assert counts.min() >= 20
    assert counts.max() <= shape.per_user_cap
