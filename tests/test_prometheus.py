"""/metrics: Prometheus' text format, every worker's counts added up, only on METRICS_PORT.

The real-server tests run `movierec serve` with two workers on 127.0.0.1 and parse what they
scrape with prometheus-client's own parser.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app, metrics
from app.config import ConfigError, Settings
from tests.conftest import make_zip, wait_until_settled
from tests.live import Server, free_port, get, serving, wait_for
from tests.tiny import TINY_MOVIES, TINY_RATINGS

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

ROUTE = "/api/users/<user_id>/recommendations"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when it is absent."""
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(server: Server, port: int) -> Samples:
    """Parse one scrape of the metrics port."""
    answer = get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status == 200, server.output()
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return samples(answer.body.decode())


@pytest.fixture
def tiny_source(tmp_path: Path) -> Path:
    """The tiny release as a zip on disk."""
    path = tmp_path / "ml-tiny.zip"
    path.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    return path


def test_two_workers_add_up_and_a_restart_is_counted(tiny_source: Path, tmp_path: Path) -> None:
    port = free_port()
    environment = {"WORKERS": "2", "METRICS_PORT": str(port)}
    with serving(tiny_source, tmp_path, **environment) as server:

        def both_ready() -> bool:
            found = get(f"http://127.0.0.1:{port}/metrics")
            return found.status == 200 and (
                value(samples(found.body.decode()), "movierec_engine_state", state="ready") == 2
            )

        assert wait_for(both_ready, 60), server.output()
        asked = 40
        for _ in range(asked):  # a new connection each: the kernel spreads them over the workers
            assert get(server.url("/api/users/1/recommendations?n=2")).status == 200

        # Whichever worker answers a scrape, it reports both workers' counts.
        scrapes = [scrape(server, port) for _ in range(6)]
        for found in scrapes:
            labels = {"route": ROUTE, "method": "GET", "status": "200"}
            assert value(found, "movierec_http_requests_total", **labels) == asked
            count = "movierec_http_request_duration_seconds_count"
            assert value(found, count, route=ROUTE, method="GET") == asked
            assert value(found, "movierec_worker_restarts_total") == 0
        found = scrapes[-1]
        misses = value(found, "movierec_answer_cache_lookups_total", result="miss")
        hits = value(found, "movierec_answer_cache_lookups_total", result="hit")
        # The same question: computed once by each worker that got it, a hit after that.
        assert 1 <= misses <= 2
        assert hits + misses == asked
        computed = value(found, "movierec_recommendation_seconds_count", algorithm="original")
        assert computed == misses
        bucket = "movierec_http_request_duration_seconds_bucket"
        infinite = value(found, bucket, route=ROUTE, method="GET", le="+Inf")
        assert infinite == asked
        served = [
            labels
            for (name, labels), v in found.items()
            if name == "movierec_snapshot_info" and v == 2
        ]
        assert len(served) == 1 and dict(served[0])["snapshot_id"], found
        assert value(found, "movierec_snapshot_built_timestamp_seconds") > 1.7e9

        # The public port never serves metrics, and the metrics port serves nothing else.
        assert get(server.url("/metrics")).status == 404
        assert get(f"http://127.0.0.1:{port}/").status == 404
        assert get(f"http://127.0.0.1:{port}/api/status").status == 404

        # A killed worker: its replacement is counted, its counts stay, its state goes.
        os.kill(min(server.workers()), signal.SIGKILL)

        def restarted() -> bool:
            # A scrape queued at the killed worker's socket may fail: try again.
            found = get(f"http://127.0.0.1:{port}/metrics")
            return found.status == 200 and (
                value(samples(found.body.decode()), "movierec_worker_restarts_total") == 1
            )

        assert wait_for(restarted, 30), server.output()
        assert wait_for(both_ready, 30), server.output()
        after = scrape(server, port)
        assert value(after, "movierec_engine_state", state="ready") == 2
        labels = {"route": ROUTE, "method": "GET", "status": "200"}
        assert value(after, "movierec_http_requests_total", **labels) == asked
        assert value(after, "movierec_worker_restarts_total") == 1
        assert server.stop() == 0


def test_the_metrics_port_must_differ_from_the_public_one() -> None:
    # Off unless asked for (a real server without it: tests/test_json_logs.py).
    assert Settings.from_env({}).metrics_port == 0
    with pytest.raises(ConfigError, match="METRICS_PORT=8000 must differ from PORT"):
        Settings.from_env({"METRICS_PORT": "8000"})
    with pytest.raises(ConfigError, match="METRICS_PORT='-1' must be a port number"):
        Settings.from_env({"METRICS_PORT": "-1"})
    assert Settings.from_env({"METRICS_PORT": "9100"}).metrics_port == 9100


async def test_one_process_serves_metrics_only_on_its_port(
    settings: Settings, tiny_zip: Path
) -> None:
    port = 9464
    app = create_app(
        settings.replace(source=str(tiny_zip), metrics_port=port, algorithms=("popularity",))
    )
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        await app.extensions["service"].settled()
        client: TestClientProtocol = test_app.test_client()
        before = samples(metrics.exposition().decode())
        assert (await client.get("/api/users/1/recommendations")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        on_port = {"server": ("127.0.0.1", port)}
        answer = await client.get("/metrics", scope_base=on_port)
        assert answer.status_code == 200
        found = samples((await answer.get_data()).decode())
        public = await client.get("/metrics", scope_base={"server": ("127.0.0.1", 8000)})
        assert public.status_code == 404
        assert (await client.post("/metrics", scope_base=on_port)).status_code == 405
    name = "movierec_http_requests_total"
    ok = {"route": ROUTE, "method": "GET", "status": "200"}
    assert value(found, name, **ok) - value(before, name, **ok) == 1
    # Unknown paths share one label value, so scanners cannot add series without bound.
    lost = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(found, name, **lost) - value(before, name, **lost) == 1
    assert not any("/no/such/page" in str(labels) for _, labels in found)
    assert value(found, "movierec_engine_state", state="ready") == 1
    assert value(found, "movierec_fit_seconds", algorithm="popularity") > 0


async def test_without_a_metrics_port_no_port_serves_them(client: TestClientProtocol) -> None:
    for port in (8000, 9464):
        answer = await client.get("/metrics", scope_base={"server": ("127.0.0.1", port)})
        assert answer.status_code == 404


def test_the_workers_folder_falls_back_to_data_dir_and_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a read-only root filesystem with no tmpfs: no usable temporary folder.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such"))
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    data = tmp_path / "data"
    with metrics.shared_by_workers(data) as folder:
        assert folder.parent == data
        assert os.environ[metrics.MULTIPROC_ENV] == str(folder)
        assert folder.stat().st_mode & 0o777 == 0o700
    assert not folder.exists()
    assert metrics.MULTIPROC_ENV not in os.environ


def test_no_writable_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no" / "such"))
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(metrics.NoFolder, match="set TMPDIR"), metrics.shared_by_workers(blocked):
        pass
