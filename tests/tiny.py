"""The tiny hand-made MovieLens release, defined once.

Small enough to work out by hand (see test_recommender.py): user 1 rated movies 10 and 20;
users 2-4 overlap with them in different amounts. Movie 60 is in the catalogue but never rated,
and movie 40's title is markup, to check it is escaped.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

# (user_id, movie_id, rating)
TINY: list[tuple[int, int, float]] = [
    (1, 10, 5.0),
    (1, 20, 3.0),
    (2, 10, 4.0),
    (2, 20, 3.0),
    (2, 30, 5.0),
    (3, 10, 5.0),
    (3, 40, 2.0),
    (3, 50, 4.0),
    (4, 20, 1.0),
    (4, 30, 1.0),
    (4, 50, 5.0),
]
# When each row of TINY was rated (seconds since the epoch), row for row.
TIMESTAMPS: list[int] = [
    964982703,
    964981247,
    964982224,
    964983815,
    964982931,
    964982400,
    964980868,
    964982176,
    964984041,
    964984100,
    964983650,
]
# (movie_id, title, genres)
MOVIES: list[tuple[int, str, str]] = [
    (10, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    (20, "American President, The (1995)", "Comedy|Drama|Romance"),
    (30, "Heat (1995)", "Action|Crime|Thriller"),
    (40, "<script>alert(1)</script> (2001)", "(no genres listed)"),
    (50, "Babylon 5", "Sci-Fi"),
    (60, "Never Rated (1999)", "Drama"),
]


def frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """Ratings as the loader gives them: columns user_id, movie_id, rating."""
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])


def _csv(header: list[str], rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# The same release as ml-latest-small's ratings.csv and movies.csv.
TINY_RATINGS = _csv(
    ["userId", "movieId", "rating", "timestamp"],
    [(*row, stamp) for row, stamp in zip(TINY, TIMESTAMPS, strict=True)],
)
TINY_MOVIES = _csv(["movieId", "title", "genres"], list(MOVIES))
