"""Load a MovieLens release into tidy frames; column names and dtypes are fixed here only.

Every GroupLens layout (layouts.py) is recognised by the files in the folder.

The tidy result is the same for all of them:

- `Dataset.ratings`: one row per (user, movie), sorted by user_id then movie_id, columns
  `user_id` int32, `movie_id` int32, `rating` float32 (0 < rating <= 5) and, with
  `load(..., with_timestamps=True)`, `timestamp` int64 (seconds since 1970). An id column is
  int64 only in the unlikely case that its ids do not fit in int32.
- `Dataset.movies`: indexed by `movie_id` (int64), columns `title` (str, the year removed),
  `year` (nullable Int64), `genres` (str, names joined by "|", "" when none are listed), and
  `imdb_id` and `tmdb_id` (nullable Int64, from links.csv when the release has one).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.data.errors import DatasetError
from app.data.layouts import LAYOUTS, NO_GENRES, RATING_DTYPE, Layout

if TYPE_CHECKING:  # pandas is imported where files are read, so serving from a snapshot
    import pandas as pd  # never loads it (a fifth of a second of every start)

log = logging.getLogger(__name__)

# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Ready Player One (2018) " all carry a year
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")


@dataclass(frozen=True)
class Dataset:
    """A loaded release: `ratings` (user_id, movie_id, rating[, timestamp]) and `movies`."""

    ratings: pd.DataFrame
    movies: pd.DataFrame


def find_release_dir(root: Path) -> Path:
    """The folder under `root` (itself or up to two levels down) that holds the release files."""
    return find_release(root)[0]


def find_release(root: Path) -> tuple[Path, Layout]:
    """The release folder under `root` and its layout; the first folder that has one wins."""
    candidates = [
        root,
        *sorted(p for p in root.glob("*") if p.is_dir()),
        *sorted(p for p in root.glob("*/*") if p.is_dir()),
    ]
    for folder in candidates:
        for layout in LAYOUTS:
            if (folder / layout.ratings_file).is_file() and (folder / layout.movies_file).is_file():
                return folder, layout
    raise DatasetError(
        f"No {expected_files()} found in {root}; is this a MovieLens release?",
        public=f"No {expected_files()} found in MOVIELENS_SOURCE; is it a MovieLens release?",
    )


def expected_files() -> str:
    """Every layout's pair of files, for messages: 'ratings.csv and movies.csv (...), ...'."""
    described = [layout.describe() for layout in LAYOUTS]
    return f"{', '.join(described[:-1])} or {described[-1]}"


def load(root: Path, *, with_timestamps: bool = False) -> Dataset:
    """Read ratings and movies from an extracted release of any layout, validating them.

    Timestamps are left out unless asked for: at 25M ratings they cost 200 MB and a second.
    """
    folder, layout = find_release(root)
    ratings = layout.read_ratings(folder / layout.ratings_file, with_timestamps)
    movies = _tidy_movies(layout.read_movies(folder / layout.movies_file), layout.movies_file)
    return Dataset(
        ratings=_tidy_ratings(ratings, layout.ratings_file),
        movies=movies.join(_read_links(folder / LINKS_FILE), how="left"),
    )


def _read_links(path: Path) -> pd.DataFrame:
    """Each film's IMDb and TMDB ids from links.csv (the .csv releases); empty without it.

    Links are a nicety: a missing or malformed file costs the links, never the dataset.
    """
    import pandas as pd

    empty = pd.DataFrame(
        {"imdb_id": pd.array([], dtype="Int64"), "tmdb_id": pd.array([], dtype="Int64")},
        index=pd.Index([], dtype=np.int64, name="movie_id"),
    )
    if not path.is_file():
        return empty
    try:
        frame = pd.read_csv(path, dtype="string")
        links = pd.DataFrame(
            {
                "imdb_id": pd.to_numeric(frame["imdbId"], errors="coerce").astype("Int64").array,
                "tmdb_id": pd.to_numeric(frame["tmdbId"], errors="coerce").astype("Int64").array,
            },
            index=pd.Index(pd.to_numeric(frame["movieId"]).astype(np.int64), name="movie_id"),
        )
    except (ValueError, KeyError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        log.warning("Leaving out the films' links: %s is malformed (%s)", path.name, exc)
        return empty
    return links[~links.index.duplicated()]


LINKS_FILE = "links.csv"


def _tidy_ratings(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if frame.empty:
        raise DatasetError(f"{name} holds no ratings")
    rating = frame["rating"].to_numpy()
    if np.isnan(rating).any():
        raise DatasetError(f"{name} has empty cells")
    bad = np.flatnonzero((rating <= 0) | (rating > 5))
    if len(bad):
        row = frame.iloc[bad[0]]
        raise DatasetError(
            f"{name} has a rating of {row['rating']} (user {int(row['user_id'])}, "
            f"movie {int(row['movie_id'])}); ratings must be above 0 and at most 5"
        )
    users = frame["user_id"].to_numpy()
    movies = frame["movie_id"].to_numpy()
    if _strictly_increasing(users, movies):
        # The usual case (every .csv release): already sorted, so no pair can repeat.
        return frame
    order = np.lexsort((movies, users))
    frame = frame.take(order).reset_index(drop=True)
    users, movies = users[order], movies[order]
    starts = np.flatnonzero(
        np.concatenate(([True], (users[1:] != users[:-1]) | (movies[1:] != movies[:-1])))
    )
    if len(starts) == len(frame):
        return frame
    # One cell per (user, movie), as a pivot table makes it: repeated ratings are averaged
    # (and keep the latest timestamp).
    log.warning(
        "%s rates %d (user, movie) pairs more than once; using their mean",
        name,
        len(frame) - len(starts),
    )
    counts = np.diff(np.append(starts, len(frame)))
    means = np.add.reduceat(frame["rating"].to_numpy(np.float64), starts) / counts
    merged = frame.iloc[starts].reset_index(drop=True)
    merged["rating"] = means.astype(RATING_DTYPE)
    if "timestamp" in frame:
        merged["timestamp"] = np.maximum.reduceat(frame["timestamp"].to_numpy(), starts)
    return merged


def _strictly_increasing(users: np.ndarray, movies: np.ndarray) -> bool:
    """True when the (user, movie) pairs are sorted and distinct."""
    later_user = users[1:] > users[:-1]
    same_user = users[1:] == users[:-1]
    return bool(np.all(later_user | (same_user & (movies[1:] > movies[:-1]))))


def _tidy_movies(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    import pandas as pd

    if frame["movie_id"].isna().any():
        raise DatasetError(f"{name} has a row without a movieId")
    if frame["movie_id"].duplicated().any():
        raise DatasetError(f"{name} lists the same movieId twice")
    title = frame["title"].fillna("").str.strip()
    parts = title.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    year = pd.to_numeric(parts["year"]).astype("Int64")
    if "released" in frame:
        year = year.fillna(frame["released"])
    genres = frame["genres"].fillna("").str.strip().replace(NO_GENRES, "")
    return pd.DataFrame(
        {
            "title": title.where(~has_year, parts["title"]).to_numpy(dtype=object),
            "year": year.array,
            "genres": genres.to_numpy(dtype=object),
        },
        index=pd.Index(frame["movie_id"].astype(np.int64), name="movie_id"),
    )
