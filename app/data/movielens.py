"""Load a MovieLens release into tidy frames; column names and dtypes are fixed here only."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

RATINGS_FILE = "ratings.csv"
MOVIES_FILE = "movies.csv"
RATINGS_COLUMNS = {"userId": "user_id", "movieId": "movie_id", "rating": "rating"}
MOVIES_COLUMNS = {"movieId": "movie_id", "title": "title", "genres": "genres"}
NO_GENRES = "(no genres listed)"

log = logging.getLogger(__name__)

# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Ready Player One (2018) " all carry a year
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")


class DatasetError(Exception):
    """The dataset cannot be used; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A loaded release: `ratings` (user_id, movie_id, rating) and `movies` indexed by movie_id."""

    ratings: pd.DataFrame
    movies: pd.DataFrame


def find_release_dir(root: Path) -> Path:
    """The folder under `root` (itself or up to two levels down) that holds the release files."""
    candidates = [
        root,
        *sorted(p for p in root.glob("*") if p.is_dir()),
        *sorted(p for p in root.glob("*/*") if p.is_dir()),
    ]
    for folder in candidates:
        if (folder / RATINGS_FILE).is_file() and (folder / MOVIES_FILE).is_file():
            return folder
    raise DatasetError(
        f"No {RATINGS_FILE} and {MOVIES_FILE} found in {root}; "
        "is this a MovieLens release such as ml-latest-small?"
    )


def load(root: Path) -> Dataset:
    """Read ratings and movies from an extracted release, validating columns and values."""
    folder = find_release_dir(root)
    ratings = _read_csv(
        folder / RATINGS_FILE,
        RATINGS_COLUMNS,
        {"userId": "int64", "movieId": "int64", "rating": "float64"},
    )
    movies = _read_csv(
        folder / MOVIES_FILE,
        MOVIES_COLUMNS,
        {"movieId": "int64", "title": "string", "genres": "string"},
    )
    return Dataset(ratings=_tidy_ratings(ratings), movies=_tidy_movies(movies))


def _read_csv(path: Path, columns: dict[str, str], dtypes: dict[str, str]) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} is not a readable CSV file: {exc}") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(
            f"{path.name} lacks the column(s) {', '.join(missing)}; "
            f"expected {', '.join(columns)} (found {', '.join(map(str, header)) or 'none'})"
        )
    try:
        frame = pd.read_csv(path, usecols=list(columns), dtype=dtypes, encoding="utf-8")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} has a malformed value: {exc}") from None
    return frame.rename(columns=columns)


def _tidy_ratings(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        raise DatasetError(f"{RATINGS_FILE} holds no ratings")
    if frame.isna().any().any():
        raise DatasetError(f"{RATINGS_FILE} has empty cells")
    bad = frame[(frame["rating"] <= 0) | (frame["rating"] > 5)]
    if not bad.empty:
        row = bad.iloc[0]
        raise DatasetError(
            f"{RATINGS_FILE} has a rating of {row['rating']} (user {row['user_id']}, "
            f"movie {row['movie_id']}); ratings must be above 0 and at most 5"
        )
    frame = frame.astype({"user_id": np.int64, "movie_id": np.int64, "rating": np.float64})
    repeats = frame.duplicated(["user_id", "movie_id"])
    if repeats.any():
        # One cell per (user, movie), as a pivot table makes it: repeated ratings are averaged.
        log.warning(
            "%s rates %d (user, movie) pairs more than once; using their mean",
            RATINGS_FILE,
            int(repeats.sum()),
        )
        frame = frame.groupby(["user_id", "movie_id"], as_index=False, sort=False)["rating"].mean()
    return frame


def _tidy_movies(frame: pd.DataFrame) -> pd.DataFrame:
    if frame["movie_id"].isna().any():
        raise DatasetError(f"{MOVIES_FILE} has a row without a movieId")
    if frame["movie_id"].duplicated().any():
        raise DatasetError(f"{MOVIES_FILE} lists the same movieId twice")
    title = frame["title"].fillna("").str.strip()
    parts = title.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    genres = frame["genres"].fillna("").replace(NO_GENRES, "")
    return pd.DataFrame(
        {
            "title": title.where(~has_year, parts["title"]).to_numpy(dtype=object),
            "year": pd.to_numeric(parts["year"]).astype("Int64").array,
            "genres": genres.to_numpy(dtype=object),
        },
        index=pd.Index(frame["movie_id"].astype(np.int64), name="movie_id"),
    )
