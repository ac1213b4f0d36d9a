"""The Engine: the one place that runs the pipeline (fetch -> load -> fit -> swap) and serves it."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from app.cache import LRUCache
from app.config import Settings
from app.data import snapshot
from app.data.catalogue import Catalogue, Movie
from app.data.fetch import FetchError, fetch_dataset
from app.data.movielens import DatasetError, find_release_dir, load
from app.recommender import Neighbour, RatingMatrix, Recommendation, UserKNN

log = logging.getLogger(__name__)

MAX_N = 50
MAX_K = 100


class State(StrEnum):
    """Where the engine is: still building, ready to answer, or failed with a reason."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class NotReady(RuntimeError):
    """The model is not built yet (or its build failed)."""


@dataclass(frozen=True)
class Status:
    """A snapshot of the engine's progress, safe to render or serialise."""

    state: State
    phase: str
    done: int = 0
    total: int | None = None
    error: str = ""
    hint: str = ""
    users: int = 0
    movies: int = 0
    ratings: int = 0
    user_id_range: tuple[int, int] | None = None
    seconds_to_ready: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share of the current phase done, when it is measurable."""
        if self.total:
            return min(1.0, self.done / self.total)
        return None


@dataclass(frozen=True)
class MovieResult:
    """One recommended movie with what the page and the API show about it."""

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    score: float
    neighbours_rated: int
    avg_rating: float | None
    ratings_count: int


@dataclass(frozen=True)
class Recommendations:
    """The answer to one request: the movies and the neighbours they came from."""

    user_id: int
    n: int
    k: int
    movies: list[MovieResult]
    neighbours: list[Neighbour]


# Bumped whenever what a snapshot holds changes meaning, so old snapshots are rebuilt.
MODEL_VERSION = 1
SNAPSHOT_DIR = "snapshots"


@dataclass
class _Model:
    """What a build produces; swapped in with one assignment, with a fresh answer cache."""

    knn: UserKNN
    catalogue: Catalogue
    from_snapshot: bool
    answers: LRUCache[Recommendations] = field(default_factory=lambda: LRUCache(0))


class _Stopped(Exception):
    """The engine stopped while a build was waiting for another worker."""


@dataclass
class Engine:
    """Builds the model in the background and answers recommendation queries once ready."""

    settings: Settings
    _status: Status = field(default_factory=lambda: Status(State.LOADING, "starting"))
    _model: _Model | None = None
    _task: asyncio.Task[None] | None = None
    _started_at: float = 0.0
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> Status:
        """The current status snapshot."""
        return self._status

    @property
    def ready(self) -> bool:
        """True once a model is being served."""
        return self._model is not None

    def start(self) -> None:
        """Start a build in the background unless one is running or the model is ready."""
        if self._task is not None and not self._task.done():
            return
        if self.ready:
            return
        # Loading from this moment, so a page rendered right after a retry already polls.
        self._set(State.LOADING, "starting")
        self._task = asyncio.get_running_loop().create_task(self.build(), name="engine-build")

    async def stop(self) -> None:
        """Cancel a build in progress (on shutdown)."""
        self._stopping.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def build(self) -> None:
        """Fetch, load, fit and swap in the model; a failure is recorded, logged, not raised."""
        self._started_at = time.monotonic()
        self._stopping.clear()
        self._set(State.LOADING, "starting")
        try:
            folder = await fetch_dataset(self.settings, self._on_fetch_progress)
            model = await asyncio.to_thread(self._load_or_build, folder)
        except _Stopped:
            return
        except FetchError as exc:
            self._fail(str(exc), exc.hint)
            return
        except DatasetError as exc:
            self._fail(str(exc), "Point MOVIELENS_SOURCE at an intact MovieLens release.")
            return
        except OSError as exc:
            self._fail(
                f"Could not read or write the dataset: {exc}",
                "Check that DATA_DIR is writable and has free space.",
            )
            return
        except Exception:
            log.exception("Building the model failed")
            self._fail(
                "Building the model failed unexpectedly; the server log has the details.",
                "Retry; if it fails again, report the log.",
            )
            return
        model.answers = LRUCache(self.settings.result_cache)
        self._model = model
        self._ready()

    def _load_or_build(self, folder: Path) -> _Model:
        """The snapshot of this release if there is a current one, else build and write it.

        Runs in a thread. Workers sharing DATA_DIR take turns on a lock, so the first one
        builds and the others map what it wrote; everyone serves from the mapping, so the
        arrays are in memory once however many workers there are.
        """
        release = find_release_dir(folder)
        path = self.settings.data_dir / SNAPSHOT_DIR / f"{release.name}.snapshot"
        expect = {"model_version": MODEL_VERSION, "source": _fingerprint(release)}
        with self._exclusive(path.with_name(f".{path.name}.lock")):
            try:
                return _mapped_model(path, expect, from_snapshot=True)
            except snapshot.SnapshotError as exc:
                log.info("Building the model from the CSV files (%s)", exc)
            self._set(State.LOADING, "loading ratings")
            dataset = load(release)
            self._set(State.LOADING, "building the rating matrix")
            matrix = RatingMatrix.from_frame(dataset.ratings)
            catalogue = Catalogue.from_frame(dataset.movies)
            del dataset
            self._set(State.LOADING, "saving a snapshot")
            try:
                snapshot.write(path, {**matrix.to_arrays(), **catalogue.to_arrays()}, expect)
            except OSError as exc:
                log.warning("Could not write the snapshot %s (%s); serving from memory", path, exc)
                return _Model(UserKNN().fit(matrix), catalogue, from_snapshot=False)
            del matrix, catalogue
            return _mapped_model(path, expect, from_snapshot=False)

    @contextlib.contextmanager
    def _exclusive(self, path: Path) -> Iterator[None]:
        """Hold a file lock, polling so that a stop is noticed while another worker builds."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            waiting = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting:
                        self._set(State.LOADING, "waiting for another worker's model")
                        waiting = True
                    if self._stopping.wait(0.1):
                        raise _Stopped from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def cached(self, user_id: int, n: int = 5, k: int = 5) -> Recommendations | None:
        """The answer if it was computed recently (cheap enough for the event loop)."""
        model = self._model
        return None if model is None else model.answers.get((user_id, n, k))

    def recommend(self, user_id: int, n: int = 5, k: int = 5) -> Recommendations:
        """Recommendations for a known user (blocking: call it in a thread)."""
        model = self._require_model()
        answer = model.answers.get((user_id, n, k))
        if answer is None:
            answer = self._recommend(model, user_id, n, k)
            model.answers.put((user_id, n, k), answer)
        return answer

    def _recommend(self, model: _Model, user_id: int, n: int, k: int) -> Recommendations:
        neighbours, picks = model.knn.recommend_with_neighbours(user_id, n, k)
        ids = np.fromiter((p.movie_id for p in picks), dtype=np.int64, count=len(picks))
        means, counts = _movie_stats(model.knn.matrix, ids)
        movies = [
            _movie_result(model.catalogue.get(pick.movie_id), pick, float(mean), int(count))
            for pick, mean, count in zip(picks, means, counts, strict=True)
        ]
        return Recommendations(user_id, n, k, movies, neighbours)

    def similar_users(self, user_id: int, k: int = 5) -> list[Neighbour]:
        """The k most similar users (blocking: call it in a thread)."""
        return self._require_model().knn.similar_users(user_id, k)

    def _require_model(self) -> _Model:
        model = self._model
        if model is None:
            raise NotReady(self._status.error or "The model is still loading")
        return model

    def _on_fetch_progress(self, phase: str, done: int, total: int | None) -> None:
        self._set(State.LOADING, phase, done, total)

    def _set(self, state: State, phase: str, done: int = 0, total: int | None = None) -> None:
        self._status = Status(state, phase, done, total)

    def _fail(self, error: str, hint: str) -> None:
        log.error("Dataset unavailable: %s", error)
        self._status = Status(State.FAILED, "failed", error=error, hint=hint)

    def _ready(self) -> None:
        matrix = self._require_model().knn.matrix
        ids = matrix.user_ids
        elapsed = time.monotonic() - self._started_at
        self._status = Status(
            State.READY,
            "ready",
            users=matrix.n_users,
            movies=matrix.n_items,
            ratings=matrix.nnz,
            user_id_range=(int(ids[0]), int(ids[-1])),
            seconds_to_ready=elapsed,
        )
        log.info(
            "Model ready in %.2fs (%s): %d users, %d movies, %d ratings",
            elapsed,
            "from the snapshot" if self._require_model().from_snapshot else "built from CSV",
            matrix.n_users,
            matrix.n_items,
            matrix.nnz,
        )


def _mapped_model(path: Path, expect: dict[str, object], *, from_snapshot: bool) -> _Model:
    arrays, _ = snapshot.read(path, expect)
    matrix = RatingMatrix.from_arrays(arrays)
    return _Model(UserKNN().fit(matrix), Catalogue.from_arrays(arrays), from_snapshot)


def _fingerprint(release: Path) -> str:
    """What the snapshot was built from: the release's files, their sizes and times."""
    files = sorted(p for p in release.rglob("*") if p.is_file() and not p.name.startswith("."))
    listing = [(str(p.relative_to(release)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([str(release.resolve()), listing]).encode()).hexdigest()


def _movie_stats(matrix: RatingMatrix, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each movie's mean rating over all users and its number of ratings (NaN and 0 if none)."""
    columns, found = matrix.columns(movie_ids)
    counts = np.where(found, matrix.item_count[columns], 0)
    means = np.where(counts > 0, matrix.item_mean[columns], np.nan)
    return means, counts


def _movie_result(
    movie: Movie | None, pick: Recommendation, mean: float, count: int
) -> MovieResult:
    # A rated movie missing from movies.csv still gets a row, under its id.
    movie = movie or Movie(pick.movie_id, f"Movie {pick.movie_id}", None, ())
    return MovieResult(
        movie_id=pick.movie_id,
        title=movie.title,
        year=movie.year,
        genres=movie.genres,
        score=pick.score,
        neighbours_rated=pick.neighbours_rated,
        avg_rating=None if math.isnan(mean) else float(mean),
        ratings_count=count,
    )
