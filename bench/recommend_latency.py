"""Time to ready and per-request latency of the original recommender on a real release.

Usage: python bench/recommend_latency.py [path-to-zip-or-folder] [--users 500]
Builds through the Engine (the pipeline the server runs) and times Model.recommend() with the
algorithm the Engine chooses, the whole answer a request gets: neighbours, scores, titles and
averages (the Service adds its cache and one hop into a thread around exactly this call).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from engine_probe import loaded_engine

from app.config import Settings
from app.engine import Recommendations, UnknownUser

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
CASES = ((5, 5), (10, 5), (50, 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--users", type=int, default=500, help="random users to time")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        engine = asyncio.run(
            loaded_engine(Settings(source=options.source, data_dir=Path(data_dir)))
        )
    status = engine.status
    if not engine.ready:
        raise SystemExit(f"build failed: {status.error}")
    assert status.user_id_range is not None
    # Stopped once loaded, before the background build's algorithms: this times the original.
    choice = engine.choose(None)

    def recommend(user_id: int, n: int = 5, k: int = 5) -> Recommendations:
        profile = choice.model.profile_of(user_id)
        return choice.model.recommend(choice.algorithm, profile, user_id=user_id, n=n, k=k)

    rng = np.random.default_rng(options.seed)
    low, high = status.user_id_range
    users: list[int] = []
    while len(users) < options.users:  # ids may have gaps: keep the ones in the data
        candidate = int(rng.integers(low, high + 1))
        try:
            recommend(candidate)  # also warms caches before timing
        except UnknownUser:
            continue
        users.append(candidate)

    print(f"dataset: {options.source}")
    print(f"algorithm: {choice.algorithm.name}")
    print(
        f"{status.ratings:,} ratings, {status.users:,} users, {status.movies:,} movies; "
        f"ready {status.seconds_to_ready:.3f} s after the build started"
    )
    print()
    print(
        f"| {'Model.recommend, ' + str(len(users)) + ' users':<30} | {'median ms':>9} | "
        f"{'p90 ms':>8} | {'p99 ms':>8} |"
    )
    print(f"|{'-' * 32}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for n, k in CASES:
        samples = []
        for user in users:
            started = time.perf_counter()
            recommend(user, n=n, k=k)
            samples.append((time.perf_counter() - started) * 1000)
        p90, p99 = np.percentile(samples, [90, 99])
        print(
            f"| {f'n={n} k={k}':<30} | {statistics.median(samples):>9.3f} | "
            f"{p90:>8.3f} | {p99:>8.3f} |"
        )


if __name__ == "__main__":
    main()
