"""The live-server helper fails loudly: a wait that times out or a server that exits is an error
with the reason, never a test that goes on as if all were well."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests import live


def test_until_returns_once_true_and_fails_when_the_time_is_up() -> None:
    calls = itertools.count()
    assert live.until(lambda: next(calls) >= 2, 5, step=0.01) < 5
    with pytest.raises(AssertionError, match="not within 0.05 s: still false"):
        live.until(lambda: False, 0.05, "still false", step=0.01)
    with pytest.raises(AssertionError, match="evaluated late"):
        live.until(lambda: False, 0.05, lambda: "evaluated late", step=0.01)


def test_a_server_that_exits_at_start_fails_the_wait_with_its_output(
    tiny_zip: Path, tmp_path: Path
) -> None:
    with live.serving(tiny_zip, tmp_path, WORKERS="many") as server:
        with pytest.raises(AssertionError, match=r"exited \d+ before it was ready") as failure:
            server.wait_ready(30)
        assert "WORKERS" in str(failure.value)  # the server's own reason, shown with the failure
    assert server.process.returncode not in (None, 0)


def test_a_served_release_is_ready_and_stops_cleanly(tiny_zip: Path, tmp_path: Path) -> None:
    environment = {"WORKERS": "2", "ALGORITHMS": "original,popularity"}
    with live.serving(tiny_zip, tmp_path, **environment) as server:
        assert server.wait_ready(60, fitted=True) >= 0
        assert len(server.workers()) == 2
        for _ in range(live.READY_CONNECTIONS):
            listed = live.get_json(server.url("/api/algorithms"))[1]["algorithms"]
            ready = {a["name"] for a in listed if a["availability"] == "ready"}
            assert ready == {"original", "popularity"}
        status, body = live.get_json(server.url("/api/status"))
        assert (status, body["state"]) == (200, "ready")
        assert server.stop() == 0
    assert live.get(server.url("/healthz"), timeout=1).status == 0  # nothing listens now


def test_a_build_writes_the_snapshot_a_server_then_maps(tiny_zip: Path, tmp_path: Path) -> None:
    done = live.build(tiny_zip, tmp_path)
    assert done.returncode == 0, done.stderr
    # `movierec build` prints the id of what it wrote; the server serves that snapshot.
    built = re.search(r"^snapshot (\w+) of ml-tiny", done.stdout, re.MULTILINE)
    assert built, done.stdout
    with live.serving(tiny_zip, tmp_path) as server:
        server.wait_ready(30)
        assert live.get_json(server.url("/api/status"))[1]["snapshot_id"] == built[1]
