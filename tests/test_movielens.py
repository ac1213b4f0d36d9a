"""Loading a release: tidy columns, parsed titles, clear messages for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.data.movielens import DatasetError, find_release_dir, load
from tests.conftest import TINY_MOVIES, TINY_RATINGS


def release(tmp_path: Path, ratings: str = TINY_RATINGS, movies: str = TINY_MOVIES) -> Path:
    folder = tmp_path / "ml-tiny"
    folder.mkdir(exist_ok=True)
    (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
    (folder / "movies.csv").write_text(movies, encoding="utf-8")
    return tmp_path


def test_loads_tidy_frames(tmp_path: Path) -> None:
    dataset = load(release(tmp_path))
    assert list(dataset.ratings.columns) == ["user_id", "movie_id", "rating"]
    assert dataset.ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int32",
        "movie_id": "int32",
        "rating": "float32",
    }
    assert len(dataset.ratings) == 11
    assert dataset.movies.index.name == "movie_id"
    assert list(dataset.movies.columns) == ["title", "year", "genres"]


def test_titles_lose_the_year_and_keep_their_commas(tmp_path: Path) -> None:
    movies = load(release(tmp_path)).movies
    assert movies.loc[20, "title"] == "American President, The"
    assert movies.loc[20, "year"] == 1995
    assert movies.loc[50, "title"] == "Babylon 5"
    assert movies.loc[50].isna()["year"]
    assert movies.loc[40, "genres"] == ""
    assert movies.loc[10, "genres"].split("|")[0] == "Adventure"


def test_finds_the_release_one_level_down(tmp_path: Path) -> None:
    assert find_release_dir(release(tmp_path)) == tmp_path / "ml-tiny"


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"No ratings.csv and movies.csv"):
        load(tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    ratings = "userId,movieId,timestamp\n1,10,964982703\n"
    with pytest.raises(DatasetError, match=r"ratings.csv lacks the column\(s\) rating"):
        load(release(tmp_path, ratings=ratings))


def test_malformed_value_is_reported(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating\n1,10,five\n"
    with pytest.raises(DatasetError, match="ratings.csv has a malformed value"):
        load(release(tmp_path, ratings=ratings))


def test_out_of_range_rating_is_reported(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating\n1,10,7.0\n"
    with pytest.raises(DatasetError, match="rating of 7.0"):
        load(release(tmp_path, ratings=ratings))


def test_empty_ratings_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no ratings"):
        load(release(tmp_path, ratings="userId,movieId,rating\n"))


def test_repeated_ratings_are_averaged_like_a_pivot_table(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating\n1,10,4.0\n2,10,2.0\n1,10,3.0\n"
    frame = load(release(tmp_path, ratings=ratings)).ratings
    assert sorted(map(tuple, frame.to_numpy().tolist())) == [(1, 10, 3.5), (2, 10, 2.0)]
