"""Importing a rating history: match rates per format and the parse-and-match time of a file.

Usage: python bench/import_speed.py [path-to-ml-latest-small.zip] [--rows 5000] [--repeat 5]
Exports are generated from the release's own movies and links (tests/exports.py: IMDb,
Letterboxd with the spellings people use, MovieLens), never real people's files. Prints each
format's match rate over the whole catalogue (right film, wrong film, reported), then the
median time to read and match a `--rows` file, with the one-off title index apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/exports.py writes the files, as the tests use them

from app.data.catalogue import Catalogue  # noqa: E402
from app.data.imports import index_of, match, read_import  # noqa: E402
from app.data.movielens import load  # noqa: E402
from tests.exports import (  # noqa: E402
    Export,
    imdb_export,
    letterboxd_export,
    movielens_export,
)

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--rows", type=int, default=5000, help="rows of the timed file")
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(options.source) as archive:
            archive.extractall(folder)
        movies = load(Path(folder)).movies
    catalogue = Catalogue.from_frame(movies)
    started = time.perf_counter()
    index_of(catalogue)
    index_seconds = time.perf_counter() - started

    print(f"Match rates, every film of {len(catalogue):,} (generated exports)")
    print(f"{'format':<12}{'rows':>7}{'right':>8}{'wrong':>7}{'reported':>10}  rate")
    misses: list[str] = []
    whole = {
        "imdb": imdb_export(movies),
        "letterboxd": letterboxd_export(movies),
        "movielens": movielens_export(movies),
    }
    for name, export in whole.items():
        found = match(read_import(export.data), catalogue)
        got = dict(found.ratings)
        right = sum(got.get(movie) == rating for movie, rating in export.expected.items())
        wrong = sum(got[movie] != export.expected.get(movie) for movie in got)
        rows = len(export.expected)
        kinds = Counter(row.kind for row in found.unmatched)
        print(
            f"{name:<12}{rows:>7,}{right:>8,}{wrong:>7}{len(found.unmatched):>10}"
            f"  {right / rows:.2%}  {dict(kinds) or ''}"
        )
        if name == "letterboxd":
            misses += [f"  row {u.row}: {u.title} ({u.year}): {u.reason}" for u in found.unmatched]
            wrong_films = [m for m in got if got[m] != export.expected.get(m)]
            misses += [f"  wrong: {catalogue.get(movie)}" for movie in wrong_films]
    print("Letterboxd rows not matched to their film:")
    print("\n".join(misses))

    print(f"\nTitle index, built once per catalogue: {index_seconds * 1000:.0f} ms")
    print(f"Read and match a {options.rows:,}-row file (median of {options.repeat})")
    timed: dict[str, Export] = {
        "imdb": imdb_export(movies, count=options.rows, seed=11),
        "letterboxd": letterboxd_export(movies, count=options.rows, seed=12),
        "movielens": movielens_export(movies, count=options.rows, seed=13),
    }
    for name, export in timed.items():
        times = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            match(read_import(export.data), catalogue)
            times.append(time.perf_counter() - started)
        size = len(export.data) / 1024
        print(f"  {name:<12}{size:>7.0f} KiB  {statistics.median(times) * 1000:>6.0f} ms")


if __name__ == "__main__":
    main()
