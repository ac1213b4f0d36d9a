"""Where an uncached home-page fragment's time goes, per request, outside any server.

Usage: python bench/fragment_costs.py [SOURCE] [--users 610] [--n 10] [--data-dir DIR]

Builds (or reuses, with --data-dir) the snapshot of SOURCE (default ../shared/data/
ml-latest-small.zip), then for each known user, one at a time and in this thread, times the
steps of `GET /?user_id=U&n=N&k=5` with `HX-Request: true` when the answer cache is off:
the ranking (the default algorithm's `rank`; and reading the same list from the build's
lists, as a known user's default request does when the snapshot has them), the answer's
reasons, titles and figures (`assemble`), the HTML (the results partial, as the Service's
`present` makes it) and its Brotli and gzip compression at the per-request settings (quality
1, level 1) and at the kept ones (quality 4, level 6); and, for the API's answer instead, its
JSON. Times are this thread's CPU time (time.thread_time), which other load on the machine
moves less than the clock. What Quart and Hypercorn add per request is what
bench/http_load.py measures: the cached fragment's CPU time against a bare Quart app's. Also
writes a cProfile of the whole loop sorted by own time to --profile, if given. BLAS is pinned
to one thread, as the server pins it.
"""

from __future__ import annotations

import os

# As the server sets them (app/serve); before NumPy is imported.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--users", type=int, default=610, help="the first this many user ids")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the users")
    parser.add_argument("--data-dir", type=Path, help="reuse this folder's snapshot")
    parser.add_argument("--profile", type=Path, help="write cProfile's top functions here")
    options = parser.parse_args()
    if options.data_dir:
        asyncio.run(measure(options, options.data_dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(measure(options, Path(tmp)))


async def measure(options: argparse.Namespace, data_dir: Path) -> None:
    """Load the app on `data_dir`, time each step per user and print the table."""
    from app import create_app
    from app.config import Settings
    from app.web import pages
    from app.web.middleware import encode

    settings = Settings.from_env().replace(
        source=options.source, data_dir=data_dir, result_cache=0, log_level="WARNING"
    )
    app = create_app(settings)
    service = app.extensions["service"]
    present = pages.results_fragment(app.extensions["templates"])
    async with app.test_app():
        await service.settled()
        model, algorithm = _default(service)
        users = [u for u in range(1, options.users + 1)]
        lists = model.toplists.get(algorithm.name)
        steps: dict[str, list[float]] = {
            name: []
            for name in (
                "rank",
                "list read",
                "assemble",
                "render",
                "brotli q1",
                "gzip 1",
                "brotli q4",
                "gzip 6",
                "API: JSON",
            )
        }
        profiler = cProfile.Profile() if options.profile else None
        sizes: list[int] = []
        for _ in range(options.rounds):
            for user_id in users:
                path = f"/?user_id={user_id}&n={options.n}&k=5"
                async with app.test_request_context(path, headers={"HX-Request": "true"}):
                    if profiler:
                        profiler.enable()
                    profile = model.profile_of(user_id)
                    ranking = _timed(steps["rank"], algorithm.rank, profile, options.n, 5)
                    if lists is not None:
                        _timed(steps["list read"], lists.ranking, profile.row, options.n)
                    answer = _timed(
                        steps["assemble"],
                        _assemble,
                        model,
                        algorithm,
                        profile,
                        ranking,
                        user_id,
                        options.n,
                    )
                    html = _timed(steps["render"], present, answer)
                    body = html.encode()
                    for coding, kept, name in (
                        ("br", False, "brotli q1"),
                        ("gzip", False, "gzip 1"),
                        ("br", True, "brotli q4"),
                        ("gzip", True, "gzip 6"),
                    ):
                        _timed(steps[name], encode, body, coding, kept)
                    _timed(steps["API: JSON"], _json, answer)
                    if profiler:
                        profiler.disable()
                    sizes.append(len(body))
        print(
            f"\n{len(users)} users x {options.rounds}, n={options.n}, "
            f"algorithm {algorithm.name}, fragment {statistics.mean(sizes) / 1024:.1f} KiB\n"
        )
        print("| step | mean CPU ms | p50 | p99 |")
        print("|---|---|---|---|")
        for name, times in steps.items():
            if not times:
                continue
            p99 = statistics.quantiles(times, n=100)[98]
            print(
                f"| {name} | {statistics.mean(times):.3f} | {statistics.median(times):.3f} "
                f"| {p99:.3f} |"
            )
        # A known user's default list is read from the build's lists when the snapshot has them.
        first = "list read" if steps["list read"] else "rank"
        fragment = (first, "assemble", "render", "brotli q1")
        total = sum(statistics.mean(steps[name]) for name in fragment)
        print(
            f"| the fragment, compressed per request ({' + '.join(fragment)}) | {total:.3f} | | |"
        )
        if profiler:
            with options.profile.open("w") as out:
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
            print(f"\ncProfile by own time: {options.profile}")


def _default(service: Any) -> tuple[Any, Any]:
    # The engine's choice for a request without one, as Service.recommend makes it.
    choice = service._engine.choose(None)
    return choice.model, choice.algorithm


def _assemble(model: Any, algorithm: Any, profile: Any, ranking: Any, user_id: int, n: int) -> Any:
    from app.engine.answers import assemble

    return assemble(
        model.matrix, model.catalogue, algorithm, profile, ranking, user_id=user_id, n=n, k=5
    )


def _json(answer: Any) -> bytes:
    """The API's answer as Quart sends it: the dict the handler returns, as JSON bytes."""
    import json

    from app.web.api import recommendations_json

    return json.dumps(recommendations_json(answer), separators=(",", ":")).encode()


def _timed(into: list[float], func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    started = time.thread_time()
    result = func(*args, **kwargs)
    into.append((time.thread_time() - started) * 1000)
    return result


if __name__ == "__main__":
    main()
