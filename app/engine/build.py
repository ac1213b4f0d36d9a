"""The build pipeline: fetch -> load -> matrix -> snapshot, and the model mapped from it.

Workers that share DATA_DIR take turns on a lock: the first one builds and writes the
snapshot, the others map what it wrote. Everyone serves from the mapping, so the arrays
are in memory once however many workers there are.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from pathlib import Path

from app.config import Settings
from app.data import lock, snapshot
from app.data.catalogue import Catalogue
from app.data.fetch import ProgressCallback, fetch_dataset, forget_extraction
from app.data.movielens import DatasetError, find_release_dir, load
from app.engine.model import Model
from app.recommender import RatingMatrix

log = logging.getLogger(__name__)

# Bumped whenever what a snapshot holds changes meaning, so old snapshots are rebuilt.
MODEL_VERSION = 1
SNAPSHOT_DIR = "snapshots"


class StorageError(DatasetError):
    """DATA_DIR could not be read or written."""

    hint = "Check that DATA_DIR is writable and has free space."


async def build_model(
    settings: Settings, report: ProgressCallback, stopping: threading.Event
) -> Model:
    """Fetch the release, then map its snapshot or build one (in a thread).

    DatasetError (with a `hint`) when the data cannot be had; LockAbandoned when `stopping`
    is set while another worker holds the build lock.
    """
    try:
        folder = await fetch_dataset(settings, report)
        try:
            return await asyncio.to_thread(_map_or_build, settings, folder, report, stopping)
        except DatasetError as exc:
            if not forget_extraction(folder):
                raise
            # The extracted files were damaged in a way their size and time do not show.
            log.warning("The extracted files fail to load (%s); extracting them again", exc)
            folder = await fetch_dataset(settings, report)
            return await asyncio.to_thread(_map_or_build, settings, folder, report, stopping)
    except OSError as exc:
        log.error("Reading or writing the dataset failed: %s", exc)
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"Could not read or write the dataset in DATA_DIR: {reason}.") from exc


def _map_or_build(
    settings: Settings, folder: Path, report: ProgressCallback, stopping: threading.Event
) -> Model:
    release = find_release_dir(folder)
    path = settings.data_dir / SNAPSHOT_DIR / f"{release.name}.snapshot"
    expect = {"model_version": MODEL_VERSION, "source": _fingerprint(release)}

    def enter(phase: str) -> None:
        report(phase, 0, None)

    with lock.held(
        path.with_name(f".{path.name}.lock"),
        lambda: enter("waiting for another worker's model"),
        stopping,
    ):
        _clean_leftovers(path)
        try:
            return _mapped(path, expect, from_snapshot=True)
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
        try:
            snapshot.write(path, {**matrix.to_arrays(), **catalogue.to_arrays()}, expect)
        except OSError as exc:
            log.warning("Could not write the snapshot %s (%s); serving from memory", path, exc)
            return Model.of(matrix, catalogue, from_snapshot=False)
        del matrix, catalogue
        return _mapped(path, expect, from_snapshot=False)


def _clean_leftovers(path: Path) -> None:
    """Remove partial snapshots an interrupted build left beside `path` (under the lock)."""
    leftovers = list(path.parent.glob(f".{path.name}.*.part"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    if leftovers:
        log.warning("Removed %d partial snapshot(s) an interrupted build left", len(leftovers))


def _mapped(path: Path, expect: dict[str, object], *, from_snapshot: bool) -> Model:
    arrays, _ = snapshot.read(path, expect)
    return Model.of(
        RatingMatrix.from_arrays(arrays), Catalogue.from_arrays(arrays), from_snapshot=from_snapshot
    )


def _fingerprint(release: Path) -> str:
    """What the snapshot was built from: the release's files, their sizes and times."""
    files = sorted(p for p in release.rglob("*") if p.is_file() and not p.name.startswith("."))
    listing = [(str(p.relative_to(release)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([str(release.resolve()), listing]).encode()).hexdigest()
