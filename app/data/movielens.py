"""Load a MovieLens release into tidy frames; column names and dtypes are fixed here only.

Every GroupLens layout is recognised by the files in the folder:

- `ratings.csv` + `movies.csv` (ml-latest-small, ml-latest, ml-25m, ml-32m),
- `ratings.dat` + `movies.dat`, fields separated by `::` (ml-1m, ml-10m),
- `u.data` (tab-separated) + `u.item` (pipe-separated, genre flags named in `u.genre`) (ml-100k).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where files are read, so serving from a snapshot
    import pandas as pd  # never loads it (a fifth of a second of every start)

RATINGS_FILE = "ratings.csv"
MOVIES_FILE = "movies.csv"
RATINGS_COLUMNS = {"userId": "user_id", "movieId": "movie_id", "rating": "rating"}
TIMESTAMP_COLUMN = {"timestamp": "timestamp"}
MOVIES_COLUMNS = {"movieId": "movie_id", "title": "title", "genres": "genres"}
NO_GENRES = "(no genres listed)"
# ml-100k's genre columns, in order, for a release whose u.genre is missing.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ID_DTYPE = "int32"
WIDE_ID_DTYPE = "int64"
RATING_DTYPE = "float32"
TIMESTAMP_DTYPE = "int64"

log = logging.getLogger(__name__)

# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Ready Player One (2018) " all carry a year
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")
# ml-100k's release dates look like "01-Jan-1995"
_DATE_YEAR = re.compile(r"(\d{4})\s*$")


class DatasetError(Exception):
    """The dataset cannot be used; the message says what is wrong, `hint` what to do."""

    hint = "Point MOVIELENS_SOURCE at an intact MovieLens release."

    @property
    def public(self) -> str:
        """The message clients may read."""
        return str(self)


@dataclass(frozen=True)
class Dataset:
    """A loaded release: `ratings` (user_id, movie_id, rating[, timestamp]) and `movies`."""

    ratings: pd.DataFrame
    movies: pd.DataFrame


@dataclass(frozen=True)
class Layout:
    """One way GroupLens lays out a release: its two files and how to read them."""

    ratings_file: str
    movies_file: str
    releases: str
    read_ratings: Callable[[Path, bool], pd.DataFrame]
    read_movies: Callable[[Path], pd.DataFrame]

    def describe(self) -> str:
        """'ratings.csv and movies.csv (ml-25m, ...)', for messages."""
        return f"{self.ratings_file} and {self.movies_file} ({self.releases})"


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
    raise DatasetError(f"No {expected_files()} found in {root}; is this a MovieLens release?")


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


def _read_csv_ratings(path: Path, with_timestamps: bool) -> pd.DataFrame:
    columns = RATINGS_COLUMNS | (TIMESTAMP_COLUMN if with_timestamps else {})
    _check_header(path, columns)
    return _read_ratings_table(path, usecols=list(columns), names=None, columns=columns)


def _read_dat_ratings(path: Path, with_timestamps: bool) -> pd.DataFrame:
    # "UserID::MovieID::Rating::Timestamp": split on single colons, the fields are every other
    # one. This keeps pandas' fast C parser (a two-character separator needs the Python one).
    names = ["user_id", "movie_id", "rating", "timestamp"]
    usecols = [0, 2, 4, 6] if with_timestamps else [0, 2, 4]
    return _read_ratings_table(
        path, usecols=usecols, names=names[: len(usecols)], sep=":", header=None
    )


def _read_udata_ratings(path: Path, with_timestamps: bool) -> pd.DataFrame:
    # "user item rating timestamp", tab-separated, no header.
    names = ["user_id", "movie_id", "rating", "timestamp"]
    usecols = [0, 1, 2, 3] if with_timestamps else [0, 1, 2]
    return _read_ratings_table(
        path, usecols=usecols, names=names[: len(usecols)], sep="\t", header=None
    )


def _read_ratings_table(
    path: Path,
    *,
    usecols: list[Any],
    names: list[str] | None,
    columns: dict[str, str] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Read with compact dtypes: int32 ids (int64 if they do not fit), float32 ratings."""
    import pandas as pd

    labels = names if names is not None else list(usecols)
    kinds = ["user", "movie", "rating", "timestamp"]

    def dtypes(id_dtype: str) -> dict[str, str]:
        by_kind = {
            "user": id_dtype,
            "movie": id_dtype,
            "rating": RATING_DTYPE,
            "timestamp": TIMESTAMP_DTYPE,
        }
        return {label: by_kind[kind] for label, kind in zip(labels, kinds, strict=False)}

    def read(id_dtype: str) -> pd.DataFrame:
        return pd.read_csv(
            path,
            usecols=usecols,
            names=names,
            dtype=dtypes(id_dtype),
            encoding="utf-8" if names is None else "latin-1",
            **options,
        )

    try:
        try:
            frame = read(ID_DTYPE)
        except ValueError:
            # An id beyond int32 (or a malformed value, which fails again below).
            frame = read(WIDE_ID_DTYPE)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} has a malformed value: {exc}") from None
    return frame.rename(columns=columns) if columns else frame


def _check_header(path: Path, columns: dict[str, str]) -> None:
    import pandas as pd

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


def _read_csv_movies(path: Path) -> pd.DataFrame:
    import pandas as pd

    _check_header(path, MOVIES_COLUMNS)
    try:
        frame = pd.read_csv(
            path,
            usecols=list(MOVIES_COLUMNS),
            dtype={"movieId": "int64", "title": "string", "genres": "string"},
            encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} has a malformed value: {exc}") from None
    return frame.rename(columns=MOVIES_COLUMNS)


def _read_dat_movies(path: Path) -> pd.DataFrame:
    import pandas as pd

    # "MovieID::Title::Genres"; titles may hold single colons, quotes and commas, so split
    # each line on the separator itself (a few thousand lines: plain Python is quick).
    rows = [line.split("::", 2) for line in _read_text(path).splitlines() if line.strip()]
    for number, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise DatasetError(f"{path.name} line {number} is not MovieID::Title::Genres")
    ids, titles, genres = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {"movie_id": _movie_ids(path, ids), "title": list(titles), "genres": list(genres)}
    )


def _read_uitem_movies(path: Path) -> pd.DataFrame:
    import pandas as pd

    # "movie id | movie title | release date | video release date | IMDb URL | 19 genre flags"
    names = _ml100k_genres(path.with_name("u.genre"))
    rows = [line.split("|") for line in _read_text(path).splitlines() if line.strip()]
    first_flag = 5
    for number, row in enumerate(rows, start=1):
        if len(row) != first_flag + len(names):
            raise DatasetError(
                f"{path.name} line {number} has {len(row)} fields; expected id, title, "
                f"release date, video release date, IMDb URL and {len(names)} genre flags"
            )
    genres = [
        "|".join(
            name
            for name, flag in zip(names, row[first_flag:], strict=True)
            if flag.strip() == "1" and name != "unknown"
        )
        for row in rows
    ]
    released = [_DATE_YEAR.search(row[2]) for row in rows]
    return pd.DataFrame(
        {
            "movie_id": _movie_ids(path, [row[0] for row in rows]),
            "title": [row[1] for row in rows],
            "genres": genres,
            "released": pd.array([int(m.group(1)) if m else None for m in released], dtype="Int64"),
        }
    )


def _ml100k_genres(path: Path) -> tuple[str, ...]:
    """The genre names from u.genre ("name|index" lines), or ml-100k's own list without it."""
    if not path.is_file():
        return ML100K_GENRES
    pairs = [line.rsplit("|", 1) for line in _read_text(path).splitlines() if "|" in line]
    try:
        return tuple(name for name, _ in sorted(pairs, key=lambda pair: int(pair[1])))
    except ValueError:
        raise DatasetError(f"{path.name} is not a list of 'name|index' lines") from None


def _read_text(path: Path) -> str:
    """A metadata file's text: UTF-8 (ml-10m) or, failing that, Latin-1 (ml-1m, ml-100k)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _movie_ids(path: Path, ids: Any) -> pd.Series:
    import pandas as pd

    try:
        return pd.Series([int(i) for i in ids], dtype="int64")
    except ValueError as exc:
        raise DatasetError(f"{path.name} has a malformed movie id: {exc}") from None


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


LAYOUTS = (
    Layout(
        RATINGS_FILE,
        MOVIES_FILE,
        "ml-latest-small, ml-latest, ml-25m, ml-32m",
        _read_csv_ratings,
        _read_csv_movies,
    ),
    Layout("ratings.dat", "movies.dat", "ml-1m, ml-10m", _read_dat_ratings, _read_dat_movies),
    Layout("u.data", "u.item", "ml-100k", _read_udata_ratings, _read_uitem_movies),
)
