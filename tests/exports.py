"""Rating exports GENERATED from a MovieLens catalogue, as IMDb, Letterboxd and MovieLens write
them: never real people's files. Each comes with the answer an import should give.

Letterboxd's names are written the way people and Letterboxd spell films, not as MovieLens
files them: the article in front ("The Matrix"), sometimes the title in parentheses (often
the English one), sometimes without accents, with "and" for "&" or a colon for " - ", and now
and then a year one off (a festival year against the release). All seeded, so repeatable.
"""

from __future__ import annotations

import csv
import io
import random
import re
import unicodedata
from dataclasses import dataclass

import pandas as pd

from app.data.catalogue import display_title

_PARENTHESES = re.compile(r"\s*\(([^()]*)\)")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?)\s+", re.IGNORECASE)
IMDB_HEADER = [
    "Const",
    "Your Rating",
    "Date Rated",
    "Title",
    "Original Title",
    "URL",
    "Title Type",
    "IMDb Rating",
    "Runtime (mins)",
    "Year",
    "Genres",
    "Num Votes",
    "Release Date",
    "Directors",
]
LETTERBOXD_HEADER = ["Date", "Name", "Year", "Letterboxd URI", "Rating"]


@dataclass(frozen=True)
class Export:
    """A generated file and what importing it should give: movie id -> rating, in file order."""

    data: bytes
    expected: dict[int, float]


def _csv(header: list[str], rows: list[list[object]], line_end: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _films(movies: pd.DataFrame, count: int | None, seed: int) -> pd.DataFrame:
    """`count` films of `movies` (all when None) in a seeded order."""
    chosen = movies if count is None else movies.sample(n=count, random_state=seed)
    return chosen.sample(frac=1.0, random_state=seed + 1)


def imdb_export(movies: pd.DataFrame, count: int | None = None, seed: int = 1) -> Export:
    """IMDb's "Your ratings" export of films that have an IMDb id (CRLF, quoted commas)."""
    rng = random.Random(seed)
    films = _films(movies[movies["imdb_id"].notna()], count, seed)
    rows, expected = [], {}
    for movie_id, film in films.iterrows():
        stars = rng.randint(1, 10)
        title = display_title(_PARENTHESES.sub("", film["title"]))
        year = "" if pd.isna(film["year"]) else int(film["year"])
        const = f"tt{int(film['imdb_id']):07d}"
        rows.append(
            [
                const,
                stars,
                "2024-03-01",
                title,
                title,
                f"https://www.imdb.com/title/{const}/",
                "Movie",
                7.1,
                101,
                year,
                film["genres"].replace("|", ", "),
                12345,
                f"{year}-01-01" if year else "",
                "Lana Wachowski, Lilly Wachowski",
            ]
        )
        expected[int(movie_id)] = stars / 2
    return Export(_csv(IMDB_HEADER, rows, "\r\n").encode("utf-8"), expected)


def letterboxd_name(title: str, rng: random.Random) -> str:
    """How Letterboxd or a person might name a film MovieLens files as `title`."""
    alternatives = [_AKA.sub("", inner) for inner in _PARENTHESES.findall(title)]
    main = _PARENTHESES.sub("", title)
    name = display_title(alternatives[0] if alternatives and rng.random() < 0.5 else main)
    if rng.random() < 0.2:
        decomposed = unicodedata.normalize("NFKD", name)
        name = "".join(c for c in decomposed if not unicodedata.combining(c))
    if rng.random() < 0.1:
        name = name.replace(" & ", " and ").replace(" - ", ": ")
    return name


def letterboxd_export(
    movies: pd.DataFrame, count: int | None = None, seed: int = 2, *, rated: bool = True
) -> Export:
    """Letterboxd's ratings.csv (or watched.csv, `rated=False`) of films with a year."""
    rng = random.Random(seed)
    films = _films(movies[movies["year"].notna()], count, seed)
    rows, expected = [], {}
    for movie_id, film in films.iterrows():
        year = int(film["year"]) + (rng.choice((-1, 1)) if rng.random() < 0.1 else 0)
        stars = rng.randint(1, 10) / 2
        name = letterboxd_name(film["title"], rng)
        row: list[object] = ["2024-03-01", name, year, f"https://boxd.it/{movie_id}"]
        rows.append([*row, stars] if rated else row)
        expected[int(movie_id)] = stars
    header = LETTERBOXD_HEADER if rated else LETTERBOXD_HEADER[:-1]
    return Export(_csv(header, rows).encode("utf-8"), expected)


def movielens_export(movies: pd.DataFrame, count: int | None = None, seed: int = 3) -> Export:
    """One user's rows as MovieLens' ratings.csv has them."""
    rng = random.Random(seed)
    films = _films(movies, count, seed)
    rows, expected = [], {}
    for movie_id in films.index:
        stars = rng.randint(1, 10) / 2
        rows.append([611, int(movie_id), stars, 1700000000])
        expected[int(movie_id)] = stars
    header = ["userId", "movieId", "rating", "timestamp"]
    return Export(_csv(header, rows).encode("utf-8"), expected)
