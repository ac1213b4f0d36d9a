"""Latency of movie nights on a real release: the database's operations and the group's list.

Usage: python bench/night_latency.py [path-to-zip-or-folder] [--database-url URL] [--nights 30]
Loads the release through the Service (as a server does), then for each of `--nights` nights
of 6 members (each rating 20 films drawn from the first 20 users' lists) times, in milliseconds:
start, join, replace a member's ratings, the version poll the pages make every second, the
whole night read, and the group's list of 10 (`Nights.recommendations`: the night read plus
Service.recommend_for_group). SQLite in a temporary folder unless `--database-url` names
another database (a PostgreSQL one must be empty or already migrated by this app).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.engine import Service

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
MEMBERS = 6
RATINGS_EACH = 20


async def timed(samples: dict[str, list[float]], name: str, call: Awaitable[Any]) -> Any:
    """Await `call`, adding its milliseconds to samples[name]."""
    began = time.perf_counter()
    result = await call
    samples.setdefault(name, []).append((time.perf_counter() - began) * 1000)
    return result


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(settings: Settings, nights: int, seed: int) -> dict[str, list[float]]:
    """Time every operation over `nights` nights; milliseconds per operation name."""
    service = Service(settings)
    service.start()
    await service.settled(600)
    # Films of the catalogue that people like: the lists of the first 20 users.
    films = sorted(
        {
            movie.movie_id
            for user_id in range(1, 21)
            for movie in (await service.recommend(user_id, n=50)).value.movies
        }
    )
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}

    def step(name: str, call: Awaitable[Any]) -> Awaitable[Any]:
        return timed(samples, name, call)

    try:
        for index in range(nights):
            night = await step("start", service.nights.create(f"198.51.100.{index}"))
            for position in range(MEMBERS):
                member, token = await step("join", service.nights.join(night.id, f"M{position}"))
                chosen = rng.sample(films, RATINGS_EACH)
                pairs = [(movie, rng.choice([2.0, 3.0, 3.5, 4.0, 4.5, 5.0])) for movie in chosen]
                await step("ratings", service.nights.set_ratings(night.id, member.id, token, pairs))
            for _ in range(5):
                await step("version", service.nights.version(night.id))
            await step("night", service.nights.get(night.id))
            await step("group list", service.nights.recommendations(night.id, 10))
    finally:
        await service.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--database-url", default="")
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--algorithms", default="all", help="ALGORITHMS for the Service")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            source=options.source,
            data_dir=Path(data_dir),
            database_url=options.database_url,
            algorithms=tuple(options.algorithms.split(",")),
            night_create_limit=options.nights + 1,
        )
        samples = asyncio.run(run(settings, options.nights, options.seed))
    where = options.database_url.partition("://")[0] or "sqlite (default)"
    print(f"{options.nights} nights of {MEMBERS} members on {where}, milliseconds:")
    print(f"{'operation':<12} {'count':>6} {'p50':>8} {'p99':>8} {'mean':>8}")
    for name, values in samples.items():
        print(
            f"{name:<12} {len(values):>6} {percentile(values, 0.5):>8.2f} "
            f"{percentile(values, 0.99):>8.2f} {statistics.fmean(values):>8.2f}"
        )


if __name__ == "__main__":
    main()
