"""Prometheus metrics: every one defined here, recorded where it happens, exposed on METRICS_PORT.

With several workers the supervisor makes a private folder and names it in
PROMETHEUS_MULTIPROC_DIR before they start; prometheus-client then keeps each process's values
in memory-mapped files there, and a scrape of any worker adds up all of them. Gauges use the
"live" modes, so a dead worker's values drop out (`worker_gone`). Without that variable (one
process, tests) the values live in this process's memory.

A leaf like app.config and app.logs: it imports nothing of the app.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

# The *_created series (when each series first appeared) say nothing an operator uses, and
# multiprocess mode has none: one process then exports what several do.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Cached answers take about a millisecond, computed ones a few, a page with 100 ratings 50 ms.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods that get their own label value; anything else a client sends counts as "other"."""
STATES = ("loading", "ready", "failed")


REQUESTS = Counter(
    "movierec_http_requests",
    "HTTP requests answered, by route (the URL rule, not the path), method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "movierec_http_request_duration_seconds",
    "Time from a request's start to its response, by route and method.",
    ["route", "method"],
    buckets=SECONDS,
)
RECOMMEND_SECONDS = Histogram(
    "movierec_recommendation_seconds",
    "Time to compute one list of recommendations (answer-cache misses), by algorithm.",
    ["algorithm"],
    buckets=SECONDS,
)
ANSWER_CACHE = Counter(
    "movierec_answer_cache_lookups",
    "Lookups in the workers' answer caches, by result: hit or miss.",
    ["result"],
)
SNAPSHOT = Gauge(
    "movierec_snapshot_info",
    "Workers serving each snapshot, by its id and build time.",
    ["snapshot_id", "built_at"],
    multiprocess_mode="livesum",
)
SNAPSHOT_BUILT = Gauge(
    "movierec_snapshot_built_timestamp_seconds",
    "When the newest snapshot served was built, in Unix time.",
    multiprocess_mode="livemax",
)
FIT_SECONDS = Gauge(
    "movierec_fit_seconds",
    "How long fitting each algorithm of the model served took.",
    ["algorithm"],
    multiprocess_mode="livemax",
)
WORKER_RESTARTS = Counter(
    "movierec_worker_restarts",
    "Workers the supervisor started in place of one that died.",
)
ENGINE_STATE = Gauge(
    "movierec_engine_state",
    "Workers whose engine is in each state: loading, ready or failed.",
    ["state"],
    multiprocess_mode="livesum",
)

_serving: tuple[str, str] | None = None


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    method = method if method in METHODS else "other"
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)


def answer_cache(hit: bool) -> None:
    """Count one lookup in the answer cache."""
    ANSWER_CACHE.labels("hit" if hit else "miss").inc()


def engine_state(state: str) -> None:
    """This worker's engine is now in `state`."""
    for each in STATES:
        ENGINE_STATE.labels(each).set(1 if each == state else 0)


def serving(snapshot_id: str, built_at: str, fits: Mapping[str, float]) -> None:
    """This worker serves the snapshot `snapshot_id`, whose fits took `fits` seconds."""
    global _serving
    labels = (snapshot_id, built_at)
    if _serving is not None and _serving != labels:
        SNAPSHOT.labels(*_serving).set(0)
    _serving = labels
    SNAPSHOT.labels(*labels).set(1)
    with contextlib.suppress(ValueError):
        SNAPSHOT_BUILT.set(datetime.fromisoformat(built_at).timestamp())
    for name, seconds in fits.items():
        FIT_SECONDS.labels(name).set(seconds)


def exposition() -> bytes:
    """Every metric in Prometheus' text format: all workers' together when there are several."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class NoFolder(RuntimeError):
    """No writable place for the workers' metric files."""


@contextlib.contextmanager
def shared_by_workers(fallback: Path) -> Iterator[Path]:
    """A fresh private folder for the workers' metric files, named in their environment.

    Made before the workers start and removed when they have stopped. It goes in the
    temporary folder (TMPDIR), or in `fallback` (DATA_DIR) where there is none, as on a
    read-only root filesystem without a tmpfs; NoFolder if neither is writable.
    """
    try:
        folder = Path(tempfile.mkdtemp(prefix="movierec-metrics-"))
    except OSError:
        try:
            fallback.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=".metrics-", dir=fallback))
        except OSError as exc:
            raise NoFolder(
                f"metrics need a writable folder for the workers' files: set TMPDIR to one "
                f"(or mount a tmpfs on /tmp); {fallback} is not writable either ({exc.strerror})"
            ) from None
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_gone(pid: int) -> None:
    """Drop a dead worker's live gauges; its counts stay in the totals."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        with contextlib.suppress(OSError):
            _multiprocess.mark_process_dead(pid, folder)
