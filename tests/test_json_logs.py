"""LOG_FORMAT=json and request ids: one JSON object a line, the id in the header and the log."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app import logs
from tests.live import get, serving, until

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "sane", ["trace-0001", "0f8fad5b-d9cb-469f-a165-70867728950e", "01HZX3.abc_d", "a" * 64]
)
def test_a_sane_incoming_id_is_kept(sane: str) -> None:
    assert logs.request_id(sane) == sane


@pytest.mark.parametrize(
    "insane", [None, "", "a b", "a" * 65, "-leading", "x\ny", "naïve", '"quoted"', "a/b"]
)
def test_anything_else_gets_a_fresh_id(insane: str | None) -> None:
    made = logs.request_id(insane)
    assert GENERATED.fullmatch(made)
    assert made != logs.request_id(insane)


def test_a_json_line_has_the_fields_the_request_id_and_the_exception() -> None:
    record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    record.status = 503
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    token = logs.REQUEST_ID.set("trace-7")
    try:
        line = logs.JsonFormatter().format(record)
    finally:
        logs.REQUEST_ID.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR"
    assert parsed["logger"] == "app.x"
    assert parsed["message"] == "failed here"
    assert parsed["request_id"] == "trace-7"
    assert parsed["status"] == 503
    assert parsed["time"].endswith("+00:00")
    assert "ValueError: boom" in parsed["exception"]


def test_a_text_line_ends_with_the_request_id_while_a_request_is_answered() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "hello", (), None)
    formatter = logs.TextFormatter()
    assert formatter.format(record).endswith("INFO app.x: hello")
    token = logs.REQUEST_ID.set("trace-8")
    try:
        assert formatter.format(record).endswith("INFO app.x: hello [request trace-8]")
    finally:
        logs.REQUEST_ID.reset(token)


async def test_every_answer_carries_a_request_id(client: TestClientProtocol) -> None:
    kept = await client.get("/api/users/1/recommendations", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    replaced = await client.get("/api/users/1/recommendations", headers={"X-Request-ID": "a b"})
    assert GENERATED.fullmatch(replaced.headers["X-Request-ID"])
    for path in ("/", "/no/such/page", "/api/users/1/recommendations?n=0"):
        answer = await client.get(path)
        assert answer.status_code in (200, 400, 404)
        assert GENERATED.fullmatch(answer.headers["X-Request-ID"]), path


def test_a_real_server_logs_json_lines_with_the_request_id(tiny_zip: Path, tmp_path: Path) -> None:
    environment = {"WORKERS": "2", "LOG_FORMAT": "json", "ACCESS_LOG": "on"}
    with serving(tiny_zip, tmp_path, **environment) as server:
        server.wait_ready(60)
        sent = [f"trace-{i:04d}" for i in range(20)]
        for rid in sent:
            answer = get(server.url("/api/users/1/recommendations?n=2"), {"X-Request-ID": rid})
            assert (answer.status, answer.headers["x-request-id"]) == (200, rid)
        # Without METRICS_PORT no port serves metrics (see tests/test_prometheus.py).
        assert get(server.url("/metrics")).status == 404
        made = get(server.url("/no/such/page"), {"X-Request-ID": "not a sane id"})
        assert made.status == 404
        generated = made.headers["x-request-id"]
        assert GENERATED.fullmatch(generated)

        def access_lines() -> dict[str, dict[str, Any]]:
            lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
            return {line["request_id"]: line for line in lines if line["logger"] == "app.access"}

        until(lambda: generated in access_lines(), 10, server.output)
        assert server.stop() == 0
        # Every line the server wrote, start to stop, is one JSON object.
        lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    found = access_lines()
    for rid in sent:
        assert found[rid]["status"] == 200
        assert found[rid]["route"] == "/api/users/<user_id>/recommendations"
        assert found[rid]["path"] == "/api/users/1/recommendations"
        assert found[rid]["method"] == "GET"
        assert found[rid]["duration_ms"] > 0
    assert found[generated]["status"] == 404
    assert found[generated]["route"] == "unmatched"
    # Both workers answered and logged (a new connection each; the kernel spreads them).
    assert len({found[rid]["pid"] for rid in sent}) == 2
    # The supervisor's own lines (the serving package's modules).
    assert any(line["logger"].startswith("app.serve") for line in lines)
