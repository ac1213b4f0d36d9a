"""What a movie night's page costs the server: the poll every member's page sends each second.

Usage: python bench/night_poll.py [path-to-zip-or-folder] [--members 6] [--polls 300]
Serves the release in-process (Quart's test client: the handlers, the database and the
templates, without sockets), starts a night on SQLite, lets `--members` members each rate 10
films, then times the poll when nothing changed (204: one read of the night's version), the
poll after a change (200: the group's list rendered) and the whole night page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from app import create_app
from app.config import Settings

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small.zip"
FRAGMENT = {"HX-Request": "true"}


async def timed(call: Callable[[], Awaitable[int]], times: int, expect: int) -> list[float]:
    """Milliseconds per call of `call`, which answers a status (checked against `expect`)."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        status = await call()
        spent.append((time.perf_counter() - started) * 1000)
        assert status == expect, f"answered {status}, not {expect}"
    return spent


def row(name: str, spent: list[float]) -> str:
    p99 = float(np.percentile(spent, 99))
    return f"| {name} | {len(spent)} | {statistics.median(spent):.2f} | {p99:.2f} |"


async def run(source: str, members: int, polls: int, data_dir: Path) -> None:
    app = create_app(Settings(source=source, data_dir=data_dir))
    async with app.test_app() as test_app:
        service = app.extensions["service"]
        await service.settled(timeout=300)
        client = test_app.test_client()
        night = (await client.post("/nights")).headers["Location"]
        starters = [m.movie_id for m in await service.search_movies("", 60)]
        rng = np.random.default_rng(7)
        for index in range(members):
            member = test_app.test_client()
            await member.post(f"{night}/join", form={"name": f"Member {index + 1}"})
            for movie_id in rng.choice(starters, 10, replace=False):
                stars = float(rng.integers(1, 11)) / 2
                await member.post(f"{night}/ratings", form={"set": f"{movie_id}:{stars}"})
        page = await client.get(night)
        body = await page.get_data(as_text=True)
        version = body.split('data-version="', 1)[1].split('"', 1)[0]

        async def unchanged() -> int:
            return (await client.get(f"{night}/live?v={version}", headers=FRAGMENT)).status_code

        async def changed() -> int:
            return (await client.get(f"{night}/live?v=0", headers=FRAGMENT)).status_code

        async def whole() -> int:
            return (await client.get(night)).status_code

        await timed(changed, 5, 200)  # warm the caches and the connection pool
        print(f"{members} members, 10 ratings each, on {Path(source).name}\n")
        print("| request | n | p50 ms | p99 ms |\n|---|---|---|---|")
        print(row("poll, unchanged (204)", await timed(unchanged, polls, 204)))
        print(row("poll, changed (200, the list)", await timed(changed, polls // 3, 200)))
        print(row("the night's page", await timed(whole, polls // 3, 200)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--members", type=int, default=6)
    parser.add_argument("--polls", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        asyncio.run(run(options.source, options.members, options.polls, Path(data_dir)))


if __name__ == "__main__":
    main()
