"""The build pipeline: fetch -> load -> matrix -> fit -> snapshot, and the model mapped from it.

A snapshot holds the rating matrix, the catalogue and every fitted algorithm's arrays, with
a manifest (the release's fingerprint, the settings that shaped each fit, build times and
sizes) in its header. `movierec build` writes a complete one; a server maps it read-only, so
every algorithm in it is ready at once and shared by all workers through the page cache.

Workers that share DATA_DIR take turns on a lock: without a snapshot, the first one builds
the matrix and writes a snapshot of it, the others map what it wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.config import Settings
from app.data import lock, snapshot
from app.data.catalogue import Catalogue
from app.data.fetch import ProgressCallback, extraction_digest, fetch_dataset, forget_extraction
from app.data.movielens import DatasetError, find_release_dir, load
from app.engine.manifest import Fit, Manifest
from app.engine.model import Model
from app.recommender import (
    ALGORITHMS,
    ORIGINAL,
    Algorithm,
    ItemKNN,
    RatingMatrix,
    TooLarge,
    co_rated_pairs,
    create,
)
from app.recommender.ease import EASE

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bumped whenever what a snapshot holds changes meaning, so old snapshots are rebuilt.
# 2: fitted algorithms and a manifest beside the matrix and the catalogue.
# 3: the catalogue holds each film's IMDb and TMDB ids.
# 4: item kNN and RP3beta model the most rated films their pair limit holds.
MODEL_VERSION = 4
SNAPSHOT_DIR = "snapshots"


class StorageError(DatasetError):
    """DATA_DIR could not be read or written."""

    hint = "Check that DATA_DIR is writable and has free space."


def fit_params(settings: Settings, name: str) -> dict[str, Any]:
    """The constructor arguments the settings give an algorithm (EASE's memory budget)."""
    if name == EASE.name:
        return {"memory_budget": settings.ease_memory_budget}
    return {}


def new_algorithm(settings: Settings, name: str) -> Algorithm:
    """An unfitted algorithm, made as these settings make it."""
    return create(name, **fit_params(settings, name))


def enabled_algorithms(settings: Settings) -> list[str]:
    """The algorithms ALGORITHMS enables, the original always among them, in registry order."""
    return [name for name in ALGORITHMS if name == ORIGINAL or settings.enabled(name)]


def snapshot_path(settings: Settings, release: str) -> Path:
    """Where the snapshot of a release lives in DATA_DIR."""
    return settings.data_dir / SNAPSHOT_DIR / f"{release}.snapshot"


async def build_model(
    settings: Settings, report: ProgressCallback, stopping: threading.Event
) -> Model:
    """Fetch the release, then map its snapshot or build one of the matrix (in a thread).

    Every algorithm the snapshot holds, fitted with the parameters these settings give,
    comes ready. DatasetError (with a `hint`) when the data cannot be had; LockAbandoned
    when `stopping` is set while another worker holds the lock.
    """
    return await _with_release(
        settings, report, lambda release: _map_or_build(settings, release, report, stopping)
    )


def build_snapshot(
    settings: Settings,
    names: Iterable[str],
    out: Path | None,
    report: ProgressCallback,
) -> Manifest:
    """`movierec build`: fetch, load, build the matrix, fit `names`, write one snapshot.

    Blocking. The snapshot goes to `out` (a folder) or DATA_DIR/snapshots, written to a
    temporary file and renamed into place, so servers see the old one or the new one.
    """
    started = time.monotonic()
    phases: dict[str, float] = {}
    chosen = list(dict.fromkeys(names))
    steps = ["loading ratings", "building the matrix", *chosen, "writing the snapshot"]

    def step(what: str) -> None:
        report(what if what not in chosen else f"fitting {what}", steps.index(what), len(steps))

    def build(release: Path) -> Manifest:
        clock = time.monotonic()
        step("loading ratings")
        dataset = load(release)
        phases["load"] = time.monotonic() - clock
        clock = time.monotonic()
        step("building the matrix")
        matrix = RatingMatrix.from_frame(dataset.ratings)
        catalogue = Catalogue.from_frame(dataset.movies)
        del dataset
        phases["matrix"] = time.monotonic() - clock
        arrays = {**matrix.to_arrays(), **catalogue.to_arrays()}
        fits = []
        for name in chosen:
            step(name)
            fit, fitted = _fit(settings, name, matrix)
            fits.append(fit)
            arrays.update(fitted)
        step("writing the snapshot")
        manifest = Manifest(
            build_id=uuid.uuid4().hex[:12],
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            release=release.name,
            source=fingerprint(release),
            ratings=matrix.nnz,
            fits=tuple(fits),
            seconds=time.monotonic() - started,
            bytes=sum(array.nbytes for array in arrays.values()),
            phases=phases,
        )
        path = (out or settings.data_dir / SNAPSHOT_DIR) / f"{release.name}.snapshot"
        meta = {"model_version": MODEL_VERSION, **asdict(manifest)}
        # The lock orders this rename with a server's own (smaller) snapshot of the matrix.
        with lock.held(path.with_name(f".{path.name}.lock"), lambda: None):
            snapshot.write(path, arrays, meta)
        report("done", len(steps), len(steps))
        return manifest

    return asyncio.run(_with_release(settings, report, build))


def read_manifest(path: Path) -> Manifest:
    """The manifest of the snapshot at `path` (SnapshotError if there is none)."""
    _, meta = snapshot.read(path, {"model_version": MODEL_VERSION})
    return Manifest.from_meta(meta)


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
        return [_estimate(settings, name, matrix) for name in dict.fromkeys(names)]

    return asyncio.run(_with_release(settings, report, estimate))


async def _with_release(
    settings: Settings, report: ProgressCallback, work: Callable[[Path], T]
) -> T:
    """Fetch the release and run `work(release_dir)` in a thread; damaged files extracted again."""
    try:
        folder = await fetch_dataset(settings, report)
        try:
            return await asyncio.to_thread(work, find_release_dir(folder))
        except DatasetError as exc:
            if not forget_extraction(folder):
                raise
            # The extracted files were damaged in a way their size and time do not show.
            log.warning("The extracted files fail to load (%s); extracting them again", exc)
            folder = await fetch_dataset(settings, report)
            return await asyncio.to_thread(work, find_release_dir(folder))
    except OSError as exc:
        log.error("Reading or writing the dataset failed: %s", exc)
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"Could not read or write the dataset in DATA_DIR: {reason}.") from exc


def _map_or_build(
    settings: Settings, release: Path, report: ProgressCallback, stopping: threading.Event
) -> Model:
    path = snapshot_path(settings, release.name)
    expect = expectation(release)

    def enter(phase: str) -> None:
        report(phase, 0, None)

    # A current snapshot is mapped without waiting for the lock, so that workers starting
    # together check its arrays side by side rather than in turn: it is only ever replaced by
    # a rename, so each maps a complete file. The lock is for building one, and for clearing
    # what an interrupted build left (only when nobody is building).
    guard = path.with_name(f".{path.name}.lock")
    try:
        model = map_snapshot(settings, path, expect)
    except snapshot.SnapshotError:
        pass
    else:
        with lock.held_if_free(guard) as free:
            if free:
                _clean_leftovers(path)
        return model
    with lock.held(
        guard,
        lambda: enter("waiting for another worker's model"),
        stopping,
    ):
        _clean_leftovers(path)
        try:
            return map_snapshot(settings, path, expect)
        except snapshot.SnapshotMissing as exc:
            log.info("Building the model from the CSV files (%s)", exc)
        except snapshot.SnapshotError as exc:
            log.warning("Building the model again from the CSV files: %s", exc)
        enter("loading ratings")
        dataset = load(release)
        enter("building the rating matrix")
        matrix = RatingMatrix.from_frame(dataset.ratings)
        catalogue = Catalogue.from_frame(dataset.movies)
        del dataset
        enter("saving a snapshot")
        manifest = Manifest(
            build_id=uuid.uuid4().hex[:12],
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            release=release.name,
            source=str(expect["source"]),
            ratings=matrix.nnz,
        )
        try:
            snapshot.write(
                path,
                {**matrix.to_arrays(), **catalogue.to_arrays()},
                {"model_version": MODEL_VERSION, **asdict(manifest)},
            )
        except OSError as exc:
            log.warning("Could not write the snapshot %s (%s); serving from memory", path, exc)
            return Model.of(matrix, catalogue, from_snapshot=False)
        del matrix, catalogue
        return map_snapshot(settings, path, expect, from_snapshot=False)


def map_snapshot(
    settings: Settings, path: Path, expect: Mapping[str, Any], *, from_snapshot: bool = True
) -> Model:
    """The Model in the snapshot at `path`, with every algorithm fitted as these settings would.

    SnapshotError if it is missing, damaged or not built from what `expect` says.
    """
    arrays, meta = snapshot.read(path, expect)
    manifest = Manifest.from_meta(meta)
    matrix = RatingMatrix.from_arrays(arrays)
    model = Model.of(
        matrix,
        Catalogue.from_arrays(arrays),
        from_snapshot=from_snapshot,
        manifest=manifest,
        path=path,
    )
    for fit in manifest.fits:
        if fit.name not in ALGORITHMS or fit.name == ORIGINAL or fit.reason:
            continue
        algorithm = new_algorithm(settings, fit.name)
        if algorithm.params() != fit.params:
            log.info("%s in the snapshot was fitted with other settings; fitting again", fit.name)
            continue
        prefix = f"fitted.{fit.name}."
        state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        model = model.with_algorithm(algorithm.restore(matrix, state))
    return model


def expectation(release: Path) -> dict[str, Any]:
    """What a snapshot of `release` must say it was built from to be current."""
    return {"model_version": MODEL_VERSION, "source": fingerprint(release)}


def _fit(settings: Settings, name: str, matrix: RatingMatrix) -> tuple[Fit, dict[str, Any]]:
    algorithm = new_algorithm(settings, name)
    started = time.monotonic()
    try:
        algorithm.fit(matrix)
    except (TooLarge, MemoryError) as exc:
        log.warning("Leaving out %s: %s", name, exc)
        return Fit(name, algorithm.params(), reason=str(exc)), {}
    state = {f"fitted.{name}.{key}": value for key, value in algorithm.fitted_arrays().items()}
    took = time.monotonic() - started
    size = sum(value.nbytes for value in state.values())
    log.info("%s fitted in %.2fs (%.1f MiB)", name, took, size / 2**20)
    return Fit(name, algorithm.params(), took, size), state


def _matrix_of(settings: Settings, release: Path, report: ProgressCallback) -> RatingMatrix:
    """The release's matrix, from its snapshot when there is a current one."""
    try:
        arrays, _ = snapshot.read(snapshot_path(settings, release.name), expectation(release))
        return RatingMatrix.from_arrays(arrays)
    except snapshot.SnapshotError:
        report("loading ratings", 0, None)
        return RatingMatrix.from_frame(load(release).ratings)


# Rough speeds of this kind of machine, for --dry-run: a dense solve of n films costs about
# n^3 floating-point operations; item-item fits multiply every co-rated pair once (SciPy,
# one core: 8.9e9 pairs in 38 s on the 25M synthetic set).
FLOPS_PER_SECOND = 2e10
PAIRS_PER_SECOND = 2e8


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


def _clean_leftovers(path: Path) -> None:
    """Remove partial snapshots an interrupted build left beside `path` (under the lock)."""
    leftovers = list(path.parent.glob(f".{path.name}.*.part"))
    for leftover in leftovers:
        try:
            leftover.unlink(missing_ok=True)
        except OSError as exc:  # a read-only DATA_DIR: the next build job removes it
            log.warning("Leaving the partial snapshot %s: %s", leftover.name, exc.strerror)
            return
    if leftovers:
        log.warning("Removed %d partial snapshot(s) an interrupted build left", len(leftovers))


def fingerprint(release: Path) -> str:
    """What a snapshot is built from: the zip's SHA-256 when we extracted it, else the files.

    The zip's digest is the same on every machine, so a snapshot built by a job elsewhere
    serves here; a folder given as the source is fingerprinted by its files' sizes and times.
    """
    digest = extraction_digest(release)
    if digest:
        return f"zip:{digest}"
    files = sorted(p for p in release.rglob("*") if p.is_file() and not p.name.startswith("."))
    listing = [(str(p.relative_to(release)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([str(release.resolve()), listing]).encode()).hexdigest()


def manifest_table(manifest: Manifest) -> str:
    """The summary `movierec build` prints: each algorithm's fit time, size and parameters."""
    lines = [
        f"snapshot {manifest.build_id} of {manifest.release}, built {manifest.built_at}: "
        f"{manifest.ratings:,} ratings, {manifest.bytes / 2**20:,.1f} MiB, "
        f"{manifest.seconds:.1f} s in all",
        "",
        f"| {'algorithm':<18} | {'fit s':>8} | {'MiB':>9} | parameters or why left out |",
        f"|{'-' * 20}|{'-' * 10}|{'-' * 11}|{'-' * 28}|",
    ]
    for fit in manifest.fits:
        detail = fit.reason or ", ".join(f"{k}={v}" for k, v in fit.params.items()) or "-"
        lines.append(
            f"| {fit.name:<18} | {fit.seconds:>8.2f} | {fit.bytes / 2**20:>9.1f} | {detail} |"
        )
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in manifest.phases.items())
    return "\n".join([*lines, "", f"phases: {phases}"])


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
