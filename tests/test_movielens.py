"""Loading a release: tidy columns, parsed titles, clear messages for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.data.movielens import DatasetError, find_release, find_release_dir, load
from tests.conftest import LAYOUT_FILES
from tests.tiny import TINY_MOVIES, TINY_RATINGS


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
    assert list(dataset.movies.columns) == ["title", "year", "genres", "imdb_id", "tmdb_id"]


def layout_release(tmp_path: Path, release_name: str) -> Path:
    folder = tmp_path / release_name
    folder.mkdir()
    for name, content in LAYOUT_FILES[release_name].items():
        (folder / name).write_bytes(content)
    return tmp_path


@pytest.mark.parametrize(
    ("release_name", "ratings_file"),
    [
        ("ml-latest-small", "ratings.csv"),
        ("ml-1m", "ratings.dat"),
        ("ml-10m", "ratings.dat"),
        ("ml-100k", "u.data"),
    ],
)
def test_every_layout_is_detected_and_gives_the_same_dtypes(
    tmp_path: Path, release_name: str, ratings_file: str
) -> None:
    folder, layout = find_release(layout_release(tmp_path, release_name))
    assert (folder.name, layout.ratings_file) == (release_name, ratings_file)
    dataset = load(tmp_path, with_timestamps=True)
    assert dataset.ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int32",
        "movie_id": "int32",
        "rating": "float32",
        "timestamp": "int64",
    }
    assert list(dataset.movies.columns) == ["title", "year", "genres", "imdb_id", "tmdb_id"]
    assert str(dataset.movies.index.dtype) == "int64"
    assert str(dataset.movies["year"].dtype) == "Int64"
    pairs = dataset.ratings[["user_id", "movie_id"]].to_numpy().tolist()
    assert pairs == sorted(pairs)


@pytest.mark.parametrize("release_name", ["ml-1m", "ml-10m"])
def test_dat_files_split_on_double_colons_in_either_encoding(
    tmp_path: Path, release_name: str
) -> None:
    dataset = load(layout_release(tmp_path, release_name))
    movies = dataset.movies
    assert movies.loc[10, "title"] == "Star Wars: Episode IV - A New Hope"
    assert movies.loc[10, "year"] == 1977
    assert movies.loc[10, "genres"] == "Action|Adventure|Fantasy|Sci-Fi"
    assert movies.loc[20, "title"] == "Café Society: A Story"
    assert movies.loc[30, "genres"] == ""
    assert dataset.ratings.to_numpy().tolist() == [
        [1, 10, 5.0],
        [1, 20, 3.5],
        [2, 10, 4.5],
        [2, 30, 4.0],
    ]


def test_ml100k_names_genre_flags_and_reads_latin1(tmp_path: Path) -> None:
    dataset = load(layout_release(tmp_path, "ml-100k"), with_timestamps=True)
    movies = dataset.movies
    assert movies.loc[10, ["title", "year", "genres"]].tolist() == [
        "Toy Story",
        1995,
        "Animation|Children's|Comedy",
    ]
    # No year in the title: the release date gives it.
    assert movies.loc[20, ["title", "year", "genres"]].tolist() == ["Café Lumière", 2003, "Drama"]
    assert movies.loc[30, "title"] == "unknown"
    assert movies.loc[30].isna()["year"]
    assert movies.loc[30, "genres"] == ""
    assert dataset.ratings["timestamp"].tolist() == [878887116, 891717742, 881250949]


def test_ml100k_without_u_genre_uses_its_own_genre_list(tmp_path: Path) -> None:
    root = layout_release(tmp_path, "ml-100k")
    (root / "ml-100k" / "u.genre").unlink()
    assert load(root).movies.loc[20, "genres"] == "Drama"


def test_unknown_layout_names_every_expected_pair(tmp_path: Path) -> None:
    (tmp_path / "ratings.txt").write_text("1,10,5\n")
    with pytest.raises(DatasetError) as info:
        load(tmp_path)
    message = str(info.value)
    for pair in ("ratings.csv and movies.csv", "ratings.dat and movies.dat", "u.data and u.item"):
        assert pair in message
    assert "ml-100k" in message


def test_timestamps_only_when_asked(tmp_path: Path) -> None:
    root = release(tmp_path)
    assert "timestamp" not in load(root).ratings
    stamps = load(root, with_timestamps=True).ratings["timestamp"]
    assert stamps.iloc[0] == 964982703


def test_asking_for_timestamps_a_file_lacks_is_reported(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating\n1,10,4.0\n"
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) timestamp"):
        load(release(tmp_path, ratings=ratings), with_timestamps=True)


def test_repeats_keep_the_latest_timestamp(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating,timestamp\n1,10,4.0,50\n1,10,3.0,70\n1,5,1.0,60\n"
    frame = load(release(tmp_path, ratings=ratings), with_timestamps=True).ratings
    assert frame.to_numpy().tolist() == [[1, 5, 1.0, 60], [1, 10, 3.5, 70]]
    assert str(frame["rating"].dtype) == "float32"


def test_ids_beyond_int32_are_kept_as_int64(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating\n3000000000,10,4.0\n1,10,3.0\n"
    frame = load(release(tmp_path, ratings=ratings)).ratings
    assert str(frame["user_id"].dtype) == "int64"
    assert frame["user_id"].tolist() == [1, 3_000_000_000]


def test_a_short_dat_line_is_reported(tmp_path: Path) -> None:
    root = layout_release(tmp_path, "ml-1m")
    (root / "ml-1m" / "movies.dat").write_text("10::No genres here\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="movies.dat line 1 is not MovieID::Title::Genres"):
        load(root)


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
    assert frame.to_numpy().tolist() == [[1, 10, 3.5], [2, 10, 2.0]]
