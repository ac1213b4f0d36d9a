"""Time to ready and per-request latency of the original recommender on a real release.

Usage: python bench/recommend_latency.py [path-to-zip-or-folder] [--users 500]
Prints a table: load and fit times, then recommend() latency (median, p90, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.config import Settings
from app.data.fetch import fetch_dataset
from app.data.movielens import load
from app.recommender import UserKNN

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--users", type=int, default=500, help="random users to time")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(source=options.source, data_dir=Path(data_dir))
        started = time.perf_counter()
        folder = asyncio.run(fetch_dataset(settings))
        fetched = time.perf_counter()
        dataset = load(folder)
        loaded = time.perf_counter()
        model = UserKNN().fit(dataset.ratings)
        fitted = time.perf_counter()

    rng = np.random.default_rng(options.seed)
    assert model.user_ids_ is not None
    users = rng.choice(model.user_ids_, size=options.users)
    for user in users[:20]:
        model.recommend(int(user))  # warm caches before timing
    rows = []
    for n, k in ((5, 5), (10, 5), (50, 100)):
        samples = []
        for user in users:
            t0 = time.perf_counter()
            model.recommend(int(user), n=n, k=k)
            samples.append((time.perf_counter() - t0) * 1000)
        rows.append(
            (
                f"recommend n={n} k={k}",
                statistics.median(samples),
                percentile(samples, 90),
                percentile(samples, 99),
            )
        )

    print(f"dataset: {options.source}")
    print(
        f"{len(dataset.ratings):,} ratings, {model.n_users:,} users, "
        f"{len(model.item_ids_):,} movies"
    )
    print()
    print(f"| {'step':<28} | {'seconds':>9} |")
    print(f"|{'-' * 30}|{'-' * 11}|")
    for step, seconds in (
        ("fetch + extract", fetched - started),
        ("load CSV", loaded - fetched),
        ("fit", fitted - loaded),
        ("total to ready", fitted - started),
    ):
        print(f"| {step:<28} | {seconds:>9.3f} |")
    print()
    print(
        f"| {'latency over ' + str(options.users) + ' users':<28} | {'median ms':>9} | "
        f"{'p90 ms':>8} | {'p99 ms':>8} |"
    )
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for name, median, p90, p99 in rows:
        print(f"| {name:<28} | {median:>9.3f} | {p90:>8.3f} | {p99:>8.3f} |")


if __name__ == "__main__":
    main()
