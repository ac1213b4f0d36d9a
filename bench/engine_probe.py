"""One measurement in a fresh process, printed as JSON: build or map a model, then time it.

Usage: python bench/engine_probe.py SOURCE DATA_DIR [--dense] [--users 1000] [--n 10] [--k 5]

Run by bench/scale.py in a subprocess of its own so that peak memory (ru_maxrss) belongs
to this one measurement. Without --dense it runs the Engine the server runs (snapshot if
DATA_DIR has a current one, else CSV -> matrix -> snapshot) and times Model.recommend()
with the answer cache off. With --dense it runs the original design as first written: a
dense pivot table, the full users x users cosine matrix, then per request the neighbours'
mean over dense rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.engine import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("data_dir")
    parser.add_argument("--dense", action="store_true", help="the dense reference instead")
    parser.add_argument("--users", type=int, default=1000, help="random users to time")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    probe = dense if options.dense else engine
    result = probe(options)
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


def engine(options: argparse.Namespace) -> dict[str, object]:
    """Time to ready and recommendation latency through the Engine."""
    settings = Settings(source=options.source, data_dir=Path(options.data_dir))
    started = time.perf_counter()
    engine = asyncio.run(loaded_engine(settings))
    ready = time.perf_counter() - started
    if not engine.ready:
        raise SystemExit(f"build failed: {engine.status.error}")
    # Timed before the child build adds the other algorithms: this is the original design.
    choice = engine.choose(None)
    model, algorithm = choice.model, choice.algorithm
    rss_ready = _rss()
    rng = np.random.default_rng(options.seed)
    user_ids = model.matrix.user_ids
    users = rng.choice(user_ids, size=min(options.users, len(user_ids)), replace=False)
    samples = []
    for user in users.tolist():
        begun = time.perf_counter()
        profile = model.profile_of(user)
        model.recommend(algorithm, profile, user_id=user, n=options.n, k=options.k)
        samples.append(time.perf_counter() - begun)
    return {
        "ready_seconds": ready,
        "from_snapshot": model.from_snapshot,
        "ratings": engine.status.ratings,
        "rss_ready": rss_ready,
        "rss_after": _rss(),
        **_percentiles(samples),
    }


async def loaded_engine(settings: Settings) -> Engine:
    """An Engine once its model is loaded (or failed), its background work stopped."""
    engine = Engine(settings)
    engine.start()
    await engine.loaded(timeout=3600)
    await engine.stop()
    return engine


def dense(options: argparse.Namespace) -> dict[str, object]:
    """The original design, dense: pivot, all-pairs cosine, dense means."""
    import pandas as pd
    from sklearn.metrics.pairwise import cosine_similarity

    from app.data.movielens import load

    started = time.perf_counter()
    ratings = load(Path(options.source)).ratings
    matrix = ratings.pivot_table(index="user_id", columns="movie_id", values="rating").fillna(0)
    values = matrix.to_numpy()
    similarity = cosine_similarity(values)
    ready = time.perf_counter() - started
    rss_ready = _rss()
    rng = np.random.default_rng(options.seed)
    rows = rng.choice(len(matrix.index), size=min(options.users, len(matrix.index)), replace=False)
    samples = []
    for row in rows.tolist():
        begun = time.perf_counter()
        sims = similarity[row].copy()
        sims[row] = -np.inf
        neighbours = np.lexsort((np.arange(len(sims)), -sims))[: options.k]
        scores = values[neighbours].mean(axis=0)
        unseen = np.flatnonzero(values[row] == 0)
        best = unseen[np.lexsort((unseen, -scores[unseen]))[: options.n]]
        pd.Index(matrix.columns[best])  # the ids, as the original returned them
        samples.append(time.perf_counter() - begun)
    return {"ready_seconds": ready, "rss_ready": rss_ready, **_percentiles(samples)}


def _percentiles(samples: list[float]) -> dict[str, float]:
    millis = np.array(samples) * 1000
    median, p99 = np.percentile(millis, [50, 99])
    return {"median_ms": float(median), "p99_ms": float(p99), "timed": len(samples)}


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
