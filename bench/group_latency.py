"""Latency of one group list (a movie night's) at the engine level, every algorithm fitted.

Usage: python bench/group_latency.py [SOURCE] [--data-dir DIR] [--members 6] [--groups 200]

SOURCE is a release (zip or folder; ml-latest-small by default). DATA_DIR keeps the
snapshot, so a second run on the same folder maps it rather than fitting again (at 25M pass
a folder that holds one: the build takes minutes). Each group is `--members` random users,
each giving a seeded random draw of their own ratings (5, 10 or 20 in turn, as a night's
members would), and the list is what Service.recommend_for_group computes off the event loop
(app.engine.group.recommend_group): each member scored over every film by the visitor
policy's algorithm, then merged. Printed as a Markdown table, one row per strategy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.config import Settings
from app.engine import Engine
from app.engine.group import group_strategies, group_strategy, recommend_group

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
RATINGS_GIVEN = (5, 10, 20)


async def settled_engine(settings: Settings) -> Engine:
    """An Engine with every enabled algorithm ready (or refused), its background work stopped."""
    engine = Engine(settings)
    engine.start()
    await engine.settled(timeout=3600)
    await engine.stop()
    return engine


def draw_members(engine: Engine, members: int, rng: np.random.Generator) -> list[list[tuple]]:
    """`members` random users' ratings: each a seeded draw of 5, 10 or 20 of their own."""
    matrix = engine.model.matrix
    drawn: list[list[tuple]] = []
    while len(drawn) < members:
        row = int(rng.integers(matrix.n_users))
        profile = matrix.profile(row)
        count = RATINGS_GIVEN[len(drawn) % len(RATINGS_GIVEN)]
        if len(profile.items) < count:
            continue
        chosen = rng.choice(len(profile.items), count, replace=False)
        drawn.append(
            [
                (int(matrix.item_ids[profile.items[i]]), float(profile.ratings[i]))
                for i in chosen.tolist()
            ]
        )
    return drawn


def time_groups(
    engine: Engine, groups: Sequence[list[list[tuple]]], strategy: str
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds for each group's list of 10.

    On a shared machine the wall clock includes waiting for a core; the process's CPU time
    does not, so the two together say how much of a slow run was the machine.
    """
    model = engine.model
    availability = {status.name: status for status in engine.algorithms()}
    chosen = group_strategy(strategy)
    wall, cpu = [], []
    for members in groups:
        started, used = time.perf_counter(), time.process_time()
        recommend_group(model, availability, members, 10, chosen)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--data-dir", type=Path, help="keeps the snapshot (default: temporary)")
    parser.add_argument("--members", type=int, default=6)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(source=options.source, data_dir=options.data_dir or Path(scratch))
        started = time.perf_counter()
        engine = asyncio.run(settled_engine(settings))
        ready = time.perf_counter() - started
    if not engine.ready:
        raise SystemExit(f"build failed: {engine.status.error}")
    status = engine.status
    rng = np.random.default_rng(options.seed)
    groups = [draw_members(engine, options.members, rng) for _ in range(options.groups)]
    served = [s.name for s in engine.algorithms() if s.availability == "ready"]
    print(f"dataset: {options.source}")
    print(
        f"{status.ratings:,} ratings, {status.users:,} users, {status.movies:,} movies; "
        f"ready with {', '.join(served)} in {ready:.1f} s"
    )
    print(f"{options.groups} groups of {options.members}, ratings each: 5, 10, 20 in turn")
    print()
    print(
        f"| {'strategy':<24} | {'p50 ms':>8} | {'p90 ms':>8} | {'p99 ms':>8} | {'CPU p50 ms':>10} |"
    )
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    time_groups(engine, groups[:5], group_strategies()[0].name)  # warm up
    for strategy in group_strategies():
        wall, cpu = time_groups(engine, groups, strategy.name)
        p90, p99 = np.percentile(wall, [90, 99])
        print(
            f"| {strategy.name:<24} | {statistics.median(wall):>8.2f} | "
            f"{p90:>8.2f} | {p99:>8.2f} | {statistics.median(cpu):>10.2f} |"
        )


if __name__ == "__main__":
    main()
