"""`movierec build --dry-run`: what each fit would take in memory and time, without fitting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.data import snapshot
from app.data.fetch import ProgressCallback
from app.engine.build import expectation, new_algorithm, read_release, snapshot_path, with_release
from app.engine.toplists import BLOCK_USERS, LENGTH, workers
from app.recommender import DEFAULT_ALGORITHM, ItemKNN, RatingMatrix, co_rated_pairs
from app.recommender.ease import EASE


@dataclass(frozen=True)
class Estimate:
    """What fitting one algorithm would take: peak memory and CPU time, roughly."""

    name: str
    bytes: int
    seconds: float
    note: str = ""


def estimate_fits(
    settings: Settings, names: Iterable[str], report: ProgressCallback
) -> list[Estimate]:
    """`movierec build --dry-run`: the memory and time each fit would need, without fitting."""

    def estimate(release: Path) -> list[Estimate]:
        matrix = _matrix_of(settings, release, report)
        chosen = list(dict.fromkeys(names))
        estimates = [_estimate(settings, name, matrix) for name in chosen]
        if DEFAULT_ALGORITHM in chosen:
            estimates.extend(_lists_estimate(settings, matrix))
        return estimates

    return asyncio.run(with_release(settings, report, estimate))


def _matrix_of(settings: Settings, release: Path, report: ProgressCallback) -> RatingMatrix:
    """The release's matrix, from its snapshot when there is a current one."""
    try:
        arrays, _ = snapshot.read(snapshot_path(settings, release.name), expectation(release))
        return RatingMatrix.from_arrays(arrays)
    except snapshot.SnapshotError:
        matrix, _, _ = read_release(release, lambda phase: report(phase, 0, None))
        return matrix


# Rough speeds of this kind of machine, for --dry-run: a dense solve of n films costs about
# n^3 floating-point operations; item-item fits multiply every co-rated pair once (SciPy,
# one core: 8.9e9 pairs in 38 s on the 25M synthetic set).
FLOPS_PER_SECOND = 2e10
PAIRS_PER_SECOND = 2e8
# Known users' lists add one row of EASE's weights per rating of a modelled film (SciPy's
# sparse x dense product, one core).
ADDS_PER_SECOND = 3.5e9


def _estimate(settings: Settings, name: str, matrix: RatingMatrix) -> Estimate:
    algorithm = new_algorithm(settings, name)
    if isinstance(algorithm, EASE):
        films = len(algorithm.modelled_columns(matrix))
        capped = films == algorithm.max_films
        note = f"{films:,} films" + (" (the most rated the budget holds)" if capped else "")
        if algorithm.max_films < 100:
            note = "budget too small for a useful EASE"
        return Estimate(name, algorithm.estimate_bytes(matrix), films**3 / FLOPS_PER_SECOND, note)
    if isinstance(algorithm, ItemKNN):
        items = algorithm.modelled_items(matrix)
        pairs = co_rated_pairs(matrix, items)
        capped = len(items) < matrix.n_items
        note = f"{len(items):,} films, {pairs:,} co-rated pairs" + (
            " (the most rated the pair limit holds)" if capped else ""
        )
        # The modelled films' rows (CSR, copied when capped), two dense blocks, the weights.
        rows = int(matrix.item_count[items].sum()) * 8 if capped else 0
        peak = rows + 2 * algorithm.block_bytes + len(items) * algorithm.neighbours * 12
        return Estimate(name, peak, pairs / PAIRS_PER_SECOND, note)
    return Estimate(name, matrix.n_users * 8, 0.0, "no fit beyond the matrix")


def _lists_estimate(settings: Settings, matrix: RatingMatrix) -> list[Estimate]:
    """What the default's lists of every known user would add: their arrays and blocks."""
    algorithm = new_algorithm(settings, DEFAULT_ALGORITHM)
    if not isinstance(algorithm, EASE) or algorithm.max_films < 100:
        return []
    columns = algorithm.modelled_columns(matrix)
    rated = int(matrix.item_count[columns].sum())
    threads = workers()
    # The lists (int32 + float32 per film) and, per thread, a block's scores, their copy
    # in the partition, the masks and the running count of ties (about 20 bytes a cell).
    peak = matrix.n_users * LENGTH * 8 + threads * BLOCK_USERS * len(columns) * 20
    seconds = rated * len(columns) / ADDS_PER_SECOND / threads
    note = f"each user's best {LENGTH}, {threads} threads"
    return [Estimate(f"{DEFAULT_ALGORITHM} lists", peak, seconds, note)]


def estimates_table(estimates: list[Estimate]) -> str:
    """What `movierec build --dry-run` prints: the memory and time each fit would need."""
    lines = [
        f"| {'algorithm':<18} | {'peak MiB':>10} | {'about s':>9} | note |",
        f"|{'-' * 20}|{'-' * 12}|{'-' * 11}|{'-' * 6}|",
    ]
    for estimate in estimates:
        lines.append(
            f"| {estimate.name:<18} | {estimate.bytes / 2**20:>10,.0f} | "
            f"{estimate.seconds:>9.1f} | {estimate.note} |"
        )
    return "\n".join(lines)
