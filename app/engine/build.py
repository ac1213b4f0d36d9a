"""The build pipeline: fetch -> load -> matrix -> fit -> snapshot, and the model mapped from it.

A snapshot holds the rating matrix, the catalogue and every fitted algorithm's arrays, with
a manifest (the release's fingerprint, the settings that shaped each fit, build times and
sizes) in its header. `movierec build` writes a complete one; a server maps it read-only, so
every algorithm in it is ready at once and shared by all workers through the page cache.

Workers that share DATA_DIR take turns on a lock: without a snapshot, the first one builds
the matrix and writes a snapshot of it, the others map what it wrote.

Each step is one function, composed by both: `read_release` (load the files, build the matrix
and the catalogue), `fit_all`, `new_manifest`, `write_snapshot`; `with_release` fetches
first and turns a failure to read or write DATA_DIR into a StorageError.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.config import Settings
from app.data import lock, snapshot
from app.data.archive import forget_extraction
from app.data.catalogue import Catalogue
from app.data.errors import DatasetError, not_a_folder, storage_error
from app.data.fetch import ProgressCallback, fetch_dataset
from app.data.files import clean_leftovers
from app.data.movielens import find_release_dir, load
from app.engine.manifest import Fit, Manifest, fingerprint
from app.engine.model import Model
from app.engine.toplists import TopLists, add_toplists
from app.recommender import ALGORITHMS, ORIGINAL, Algorithm, RatingMatrix, TooLarge, create
from app.recommender.ease import EASE
from app.recommender.registry import DEFAULT_ALGORITHM

log = logging.getLogger(__name__)
T = TypeVar("T")

# Bumped whenever what a snapshot holds changes meaning, so old snapshots are rebuilt.
# 2: fitted algorithms and a manifest beside the matrix and the catalogue.
# 3: the catalogue holds each film's IMDb and TMDB ids.
# 4: item kNN and RP3beta model the most rated films their pair limit holds.
MODEL_VERSION = 4
SNAPSHOT_DIR = "snapshots"

# The phases a build reports, as the status page and `movierec build` show them.
LOADING = "loading ratings"
MATRIX = "building the rating matrix"
WRITING = "writing the snapshot"
LISTING = "listing each user's best films"

Enter = Callable[[str], None]
"""Called as a build enters a phase (LOADING, MATRIX, an algorithm's name, WRITING)."""


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
    comes ready. DatasetError (with a `hint` and a `public` text) when the data cannot be
    had; LockAbandoned when `stopping` is set while another worker holds the lock.
    """
    return await with_release(
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
    chosen = list(dict.fromkeys(names))
    # Known users' lists are the default algorithm's, so they need it fitted here.
    listing = [LISTING] if DEFAULT_ALGORITHM in chosen else []
    steps = [LOADING, MATRIX, *chosen, *listing, WRITING]

    def enter(what: str) -> None:
        report(what if what not in chosen else f"fitting {what}", steps.index(what), len(steps))

    def build(release: Path) -> Manifest:
        matrix, catalogue, phases = read_release(release, enter)
        arrays = snapshot_arrays(matrix, catalogue)
        fits = fit_all(settings, chosen, matrix, arrays, enter)
        if listing:
            enter(LISTING)
            if any(fit.name == DEFAULT_ALGORITHM and not fit.reason for fit in fits):
                default = _restored(settings, DEFAULT_ALGORITHM, matrix, arrays)
                phases.update(add_toplists(default, matrix, arrays))
        enter(WRITING)
        manifest = new_manifest(
            release.name,
            fingerprint(release),
            matrix,
            arrays,
            fits=fits,
            phases=phases,
            seconds=time.monotonic() - started,
        )
        path = (out or settings.data_dir / SNAPSHOT_DIR) / f"{release.name}.snapshot"
        # The lock orders this rename with a server's own (smaller) snapshot of the matrix.
        with lock.held(lock.snapshot_lock(path), lambda: None):
            write_snapshot(path, arrays, manifest)
        report("done", len(steps), len(steps))
        return manifest

    return asyncio.run(with_release(settings, report, build))


def read_release(release: Path, enter: Enter) -> tuple[RatingMatrix, Catalogue, dict[str, float]]:
    """Load the release's files, then build the rating matrix and the catalogue.

    Also the seconds each of the two phases took ("load", "matrix"), for the manifest.
    """
    clock = time.monotonic()
    enter(LOADING)
    dataset = load(release)
    loaded = time.monotonic()
    enter(MATRIX)
    matrix = RatingMatrix.from_frame(dataset.ratings)
    catalogue = Catalogue.from_frame(dataset.movies)
    return matrix, catalogue, {"load": loaded - clock, "matrix": time.monotonic() - loaded}


def snapshot_arrays(matrix: RatingMatrix, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """The arrays every snapshot holds: the matrix's and the catalogue's."""
    return {**matrix.to_arrays(), **catalogue.to_arrays()}


def fit_all(
    settings: Settings,
    names: Iterable[str],
    matrix: RatingMatrix,
    arrays: dict[str, np.ndarray],
    enter: Enter,
) -> tuple[Fit, ...]:
    """Fit each algorithm named and add its arrays to `arrays`; what each fit took, or why not."""
    fits = []
    for name in names:
        enter(name)
        fit, fitted = _fit(settings, name, matrix)
        fits.append(fit)
        arrays.update(fitted)
    return tuple(fits)


def _restored(
    settings: Settings, name: str, matrix: RatingMatrix, arrays: Mapping[str, np.ndarray]
) -> Algorithm:
    """The algorithm `name` as fitted, from its arrays (mapped, not copied)."""
    prefix = f"fitted.{name}."
    state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    return new_algorithm(settings, name).restore(matrix, state)


def new_manifest(
    release: str,
    source: str,
    matrix: RatingMatrix,
    arrays: Mapping[str, np.ndarray],
    *,
    fits: tuple[Fit, ...] = (),
    phases: dict[str, float] | None = None,
    seconds: float = 0.0,
) -> Manifest:
    """The manifest of a new snapshot of `release` (built from `source`) holding `arrays`."""
    return Manifest(
        build_id=uuid.uuid4().hex[:12],
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        release=release,
        source=source,
        ratings=matrix.nnz,
        fits=fits,
        seconds=seconds,
        bytes=sum(array.nbytes for array in arrays.values()),
        phases=phases or {},
    )


def write_snapshot(path: Path, arrays: Mapping[str, np.ndarray], manifest: Manifest) -> None:
    """Write a snapshot with `manifest` in its header (the caller holds its lock)."""
    snapshot.write(path, arrays, {"model_version": MODEL_VERSION, **asdict(manifest)})


async def with_release(
    settings: Settings, report: ProgressCallback, work: Callable[[Path], T]
) -> T:
    """Fetch the release and run `work(release_dir)` in a thread; damaged files extracted again.

    An OSError in DATA_DIR becomes a StorageError that names DATA_DIR, not its path.
    """
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
        data_dir = settings.data_dir
        if data_dir.exists() and not data_dir.is_dir():
            raise not_a_folder(str(data_dir)) from exc
        raise storage_error(exc, str(data_dir)) from exc


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
    guard = lock.snapshot_lock(path)
    try:
        model = map_snapshot(settings, path, expect)
    except snapshot.SnapshotError:
        pass
    else:
        with lock.held_if_free(guard) as free:
            if free:
                clean_leftovers(path.parent, path.name, "snapshot")
        return model
    with lock.held(guard, lambda: enter("waiting for another worker's model"), stopping):
        clean_leftovers(path.parent, path.name, "snapshot")
        try:
            return map_snapshot(settings, path, expect)
        except snapshot.SnapshotMissing as exc:
            log.info("Building the model from the CSV files (%s)", exc)
        except snapshot.SnapshotError as exc:
            log.warning("Building the model again from the CSV files: %s", exc)
        matrix, catalogue, phases = read_release(release, enter)
        arrays = snapshot_arrays(matrix, catalogue)
        enter(WRITING)
        manifest = new_manifest(release.name, str(expect["source"]), matrix, arrays, phases=phases)
        try:
            write_snapshot(path, arrays, manifest)
        except OSError as exc:
            log.warning("Could not write the snapshot %s (%s); serving from memory", path, exc)
            return Model.of(matrix, catalogue, from_snapshot=False)
        del arrays, matrix, catalogue
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
        model = model.with_algorithm(_restored(settings, fit.name, matrix, arrays))
        lists = TopLists.from_arrays(arrays, fit.name)
        if lists is not None:
            model = model.with_toplists(lists)
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
