"""Generate MovieLens-shaped ratings at any size, deterministically, in the ml-25m layout.

Usage: python bench/synth.py [--ratings 25000095] [--users N] [--movies N] [--seed 0]
                             [--out data/synth-25m] [--zip]

Defaults to the shape of ml-25m (162,541 users, 59,047 movies, 25,000,095 ratings); a smaller
--ratings alone scales users and movies by ml-25m's proportions (with at least four times the
mean ratings per user in movies, so that small sets stay sparse). Movie popularity is Zipf-like
and user activity log-normal (every user at least 20 ratings), ratings are half stars with
user and movie biases so that there is signal to find, and no (user, movie) pair repeats.
The same seed and arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ML25M_USERS = 162_541
ML25M_MOVIES = 59_047
ML25M_RATINGS = 25_000_095
MIN_PER_USER = 20
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# Popularity of the movie at rank r is proportional to 1 / (r + POPULARITY_OFFSET); with
# ml-25m's counts about half of the users then rate the most popular movie (~81k in ml-25m).
POPULARITY_OFFSET = 10.0
# Half the catalogue is the most a single user rates (ml-25m's busiest user rated ~32k films).
MAX_SHARE_PER_USER = 0.5
ROWS_PER_CHUNK = 1_000_000
FIRST_TIMESTAMP = 789_652_009  # 1995-01-09, the first rating in ml-25m
LAST_TIMESTAMP = 1_574_327_703  # 2019-11-21, the last


@dataclass(frozen=True)
class Shape:
    """How many users, movies and ratings to generate."""

    users: int
    movies: int
    ratings: int

    @classmethod
    def scaled(cls, ratings: int, users: int | None = None, movies: int | None = None) -> Shape:
        """ml-25m's proportions of users and movies to ratings, unless given.

        Movies are at least four times the mean ratings per user, so that a small set stays
        sparse and its busiest users still find enough distinct movies.
        """
        scale = ratings / ML25M_RATINGS
        if users is None:
            users = max(1, min(round(ML25M_USERS * scale), ratings // MIN_PER_USER))
        if movies is None:
            movies = max(round(ML25M_MOVIES * scale), 4 * -(-ratings // users), 2 * MIN_PER_USER)
        return cls(users=users, movies=movies, ratings=ratings)

    def check(self) -> None:
        """Raise ValueError unless every user can have 20..cap distinct movies."""
        cap = self.per_user_cap
        if self.users < 1 or self.movies < 1:
            raise ValueError("users and movies must be at least 1")
        if cap < MIN_PER_USER:
            raise ValueError(f"{self.movies} movies are too few: a user rates at most half of them")
        if not self.users * MIN_PER_USER <= self.ratings <= self.users * cap:
            raise ValueError(
                f"{self.ratings} ratings cannot be spread over {self.users} users with "
                f"{MIN_PER_USER} to {cap} ratings each"
            )

    @property
    def per_user_cap(self) -> int:
        """The most ratings one user may have."""
        return int(self.movies * MAX_SHARE_PER_USER)


def user_activity(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: 20 each plus a log-normal share of the rest, summing exactly."""
    counts = np.full(shape.users, MIN_PER_USER, dtype=np.int64)
    extra = shape.ratings - counts.sum()
    weights = rng.lognormal(mean=0.0, sigma=1.4, size=shape.users)
    cap = shape.per_user_cap
    while extra > 0:
        room = cap - counts
        weights = np.where(room > 0, weights, 0.0)
        share = weights / weights.sum() * extra
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:
            # Hand out the last few one by one to the users with the largest remainders.
            order = np.argsort(-(share - np.floor(share)), kind="stable")
            order = order[room[order] > 0][:extra]
            add = np.zeros_like(counts)
            add[order] = 1
        counts += add
        extra -= int(add.sum())
    return counts


def movie_popularity(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Each movie's probability of being picked: Zipf-like over a random order of the movies."""
    ranks = rng.permutation(shape.movies)
    weights = 1.0 / (ranks + 1.0 + POPULARITY_OFFSET)
    return weights / weights.sum()


def draw_pairs(counts: np.ndarray, popularity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distinct (user row, movie row) keys, `counts[u]` per user, movies drawn by popularity.

    Keys are user * 2**32 + movie, so sorting them sorts by user and then movie. Draws are with
    replacement and repeats are thrown away; the users still short draw again, a little more
    than they lack, until none is short (uniformly after a few rounds, so that users who rate a
    large share of the catalogue finish quickly).
    """
    cdf = np.cumsum(popularity)
    cdf[-1] = 1.0
    need = counts.copy()
    taken = np.empty(0, dtype=np.int64)
    added: list[np.ndarray] = []
    for round_number in range(1000):
        short = np.flatnonzero(need > 0)
        if len(short) == 0:
            break
        extra = need[short] if round_number == 0 else need[short] + need[short] // 2 + 2
        users = np.repeat(short.astype(np.int64), extra)
        if round_number < 5:
            movies = np.searchsorted(cdf, rng.random(len(users)), side="right")
        else:
            movies = rng.integers(0, len(popularity), len(users))
        keys = (users << 32) | movies.astype(np.int64)
        del movies
        fresh = np.ones(len(keys), dtype=bool)
        if len(taken):
            fresh &= ~_contains(taken, keys)
        for block in added:
            fresh &= ~_contains(block, keys)
        # The first draw of each key, in draw order (which is random within a user).
        unique_keys, first = np.unique(keys, return_index=True)
        del unique_keys
        first_draw = np.zeros(len(keys), dtype=bool)
        first_draw[first] = True
        keep = np.flatnonzero(fresh & first_draw)
        del fresh, first_draw, first
        kept_users = users[keep]
        # Rank of each kept draw within its user; keep as many as the user lacks.
        starts = np.searchsorted(kept_users, kept_users, side="left")
        rank = np.arange(len(keep)) - starts
        keep = keep[rank < need[kept_users]]
        got = np.bincount(users[keep], minlength=len(need))
        need -= got
        chosen = np.sort(keys[keep])
        if round_number == 0:
            taken = chosen
        else:
            added.append(chosen)
    else:
        raise RuntimeError("could not draw distinct movies for every user")
    return np.sort(np.concatenate([taken, *added])) if added else taken


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    return np.asarray(sorted_keys[positions] == keys)


def rating_values(
    users: np.ndarray, movies: np.ndarray, popularity: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Half-star ratings from a global mean, user and movie biases, and noise.

    Popular movies lean a little higher, as in MovieLens. About a third of the users give
    whole stars only (MovieLens had no half stars before 2003), which makes 4.0 the most common
    value and the mean about 3.5.
    """
    n_users = int(users.max()) + 1
    user_bias = rng.normal(0.0, 0.45, n_users).astype(np.float32)
    whole_stars = rng.random(n_users) < 0.35
    # Centred on the average draw, so that the mean rating does not drift with the size.
    log_popularity = np.log(popularity)
    popular = (log_popularity - popularity @ log_popularity).astype(np.float32)
    movie_bias = rng.normal(0.0, 0.35, len(popularity)).astype(np.float32) + 0.12 * popular
    values = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), ROWS_PER_CHUNK):
        part = slice(start, start + ROWS_PER_CHUNK)
        u, m = users[part], movies[part]
        # Noise with a longer tail to the low side: disappointments are rarer but stronger.
        noise = rng.normal(0.0, 0.75, len(u)) - rng.exponential(0.6, len(u)) + 0.6
        latent = 3.62 + user_bias[u] + movie_bias[m] + noise.astype(np.float32)
        halves = np.where(whole_stars[u], np.rint(latent) * 2, np.rint(latent * 2))
        values[part] = np.clip(halves, 1, 10) / 2
    return values


def timestamps(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds since 1970: each user is active over a span that starts between 1995 and 2019."""
    n_users = int(users.max()) + 1
    span = LAST_TIMESTAMP - FIRST_TIMESTAMP
    start = FIRST_TIMESTAMP + (rng.random(n_users) * span).astype(np.int64)
    length = np.minimum(rng.exponential(90 * 86_400, n_users), LAST_TIMESTAMP - start)
    offset = (rng.random(len(users)) * length[users]).astype(np.int64)
    return start[users] + offset


def movie_titles(shape: Shape, rng: np.random.Generator) -> pd.DataFrame:
    """movies.csv: ids 1..movies, "Synthetic Film <id> (<year>)", one to three genres."""
    ids = np.arange(1, shape.movies + 1)
    years = rng.integers(1920, 2020, shape.movies)
    n_genres = rng.integers(1, 4, shape.movies)
    picks = rng.random((shape.movies, len(GENRES))).argsort(axis=1)
    genres = [
        "|".join(GENRES[g] for g in sorted(row[:n])) for row, n in zip(picks, n_genres, strict=True)
    ]
    return pd.DataFrame(
        {
            "movieId": ids,
            "title": [f"Synthetic Film {i} ({y})" for i, y in zip(ids, years, strict=True)],
            "genres": genres,
        }
    )


def generate(shape: Shape, seed: int, out: Path, *, make_zip: bool = False) -> Path:
    """Write ratings.csv and movies.csv under `out` (and `out`.zip if asked); returns `out`."""
    shape.check()
    rng = np.random.default_rng(seed)
    counts = user_activity(shape, rng)
    popularity = movie_popularity(shape, rng)
    keys = draw_pairs(counts, popularity, rng)
    users = (keys >> 32).astype(np.int32)
    movies = (keys & 0xFFFFFFFF).astype(np.int32)
    del keys
    ratings = rating_values(users, movies, popularity, rng)
    stamps = timestamps(users, rng)
    out.mkdir(parents=True, exist_ok=True)
    _write_ratings(out / "ratings.csv", users, movies, ratings, stamps)
    del users, movies, ratings, stamps
    movie_titles(shape, rng).to_csv(out / "movies.csv", index=False, lineterminator="\n")
    if make_zip:
        _write_zip(out)
    return out


def _write_ratings(
    path: Path, users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, stamps: np.ndarray
) -> None:
    # Ratings are written from a table of their ten spellings, which is much faster than
    # formatting floats and always gives "4.0" and "3.5" as MovieLens does.
    spelled = pd.Categorical.from_codes(
        (ratings * 2).astype(np.int8) - 1, [f"{v / 2:.1f}" for v in range(1, 11)]
    )
    partial = path.with_name(f".{path.name}.part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        for start in range(0, len(users), ROWS_PER_CHUNK):
            part = slice(start, start + ROWS_PER_CHUNK)
            chunk = pd.DataFrame(
                {
                    "userId": users[part] + 1,
                    "movieId": movies[part] + 1,
                    "rating": spelled[part],
                    "timestamp": stamps[part],
                }
            )
            chunk.to_csv(handle, header=False, index=False, lineterminator="\n")
    partial.replace(path)


def _write_zip(folder: Path) -> None:
    target = folder.with_name(f"{folder.name}.zip")
    partial = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in ("movies.csv", "ratings.csv"):
            # A fixed date keeps the zip byte-identical from run to run.
            info = zipfile.ZipInfo(f"{folder.name}/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with (folder / name).open("rb") as src, archive.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    partial.replace(target)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and generate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=ML25M_RATINGS)
    parser.add_argument("--users", type=int, help="default: scaled from ml-25m")
    parser.add_argument("--movies", type=int, help="default: scaled from ml-25m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: data/synth-<ratings>")
    parser.add_argument("--zip", action="store_true", help="also write <out>.zip")
    options = parser.parse_args(argv)
    shape = Shape.scaled(options.ratings, options.users, options.movies)
    try:
        shape.check()
    except ValueError as exc:
        parser.error(str(exc))
    out = options.out or Path("data") / f"synth-{options.ratings}"
    began = time.perf_counter()
    generate(shape, options.seed, out, make_zip=options.zip)
    print(
        f"{shape.ratings:,} ratings by {shape.users:,} users of {shape.movies:,} movies "
        f"written to {out} in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
