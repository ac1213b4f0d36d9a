"""The JSON API against its OpenAPI document, fuzzed by schemathesis on a real server.

`python -m app serve` runs on a free port of 127.0.0.1 with the tiny release and every
algorithm fitted. Schemathesis reads /api/openapi.json from it and runs all four of its
phases: the document's examples, the boundary cases of every parameter (coverage), generated
requests valid and invalid (fuzzing), and chains of calls that follow the document's links
(stateful). Every one of its checks is on: no 5xx; each status, content type, header and body
as documented; valid requests accepted, invalid ones refused with 4xx; unsupported methods
answered 405 with an Allow header; a response-time bound. Examples per operation are bounded
and the seed fixed, so the run takes seconds and repeats.

Schemathesis runs as its command (`schemathesis run`) because its pytest plugin's lazy
loading does not work with this pytest; this module is also its hooks file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from app import create_app
from app.config import Settings
from tests import live
from tests.conftest import make_zip, wait_until_available, wait_until_settled
from tests.tiny import MOVIES, TINY_MOVIES, TINY_RATINGS

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 40
"""Generated requests per operation in fuzzing (coverage adds each boundary case once)."""
FILM_IDS = [movie_id for movie_id, _, _ in MOVIES]
POST_RECOMMENDATIONS = "POST /api/recommendations"
POST_IMPORTS = "POST /api/imports"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    """Bring a valid request for posted ratings within what a schema cannot state.

    Which film ids exist in this catalogue, that each film is rated once (uniqueItems
    compares whole items), and that year_from is not after year_to: a request that breaks
    them is refused with 400, rightly, and the check that valid data is accepted would count
    that against the server. Invalid requests are sent as generated.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if case.operation.label == POST_IMPORTS:
        _valid_import(case)
    if case.operation.label != POST_RECOMMENDATIONS:
        return
    query: dict[str, Any] = case.query if case.query is not None else {}
    years = [query.get("year_from"), query.get("year_to")]
    if all(year not in (None, "") for year in years) and int(years[0]) > int(years[1]):
        query["year_from"], query["year_to"] = years[1], years[0]
    if isinstance(case.body, dict) and isinstance(case.body.get("ratings"), list):
        films: dict[int, dict[str, Any]] = {}
        for item in case.body["ratings"]:
            film = FILM_IDS[int(item["movie_id"]) % len(FILM_IDS)]
            films.setdefault(film, {**item, "movie_id": film})
        case.body["ratings"] = list(films.values())


def _valid_import(case: schemathesis.Case) -> None:
    """A schema says "a string"; an import must also be an export: a valid request gets one,
    its films and ratings drawn from what was generated."""
    generated = case.body.get("file") if isinstance(case.body, dict) else case.body
    seed = len(generated) if isinstance(generated, str | bytes) else 0
    rows = "".join(f"{FILM_IDS[(seed + i) % len(FILM_IDS)]},{1 + i % 9 / 2}\n" for i in range(3))
    export = "movieId,rating\n" + rows
    if isinstance(case.body, dict):
        case.body["file"] = export
    else:
        case.body = export


def answer(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`movierec serve` on 127.0.0.1 with the tiny release: its base URL and its log."""
    folder = tmp_path_factory.mktemp("contract")
    source = folder / "ml-tiny.zip"
    source.write_bytes(make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES}))
    with live.serving(source, folder, WORKERS="1", ALGORITHMS="all", LOG_LEVEL="WARNING") as server:
        server.wait_ready(fitted=True)
        yield server.url(""), server.log


def test_the_api_keeps_its_contract(api_server: tuple[str, Path], tmp_path: Path) -> None:
    base, log = api_server
    report = tmp_path / "report.json"
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{base}/api/openapi.json",
        "--checks=all",
        "--mode=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={MAX_EXAMPLES}",
        "--seed=16",
        "--workers=1",
        # A tiny model answers in milliseconds: 5 s means something hangs.
        "--max-response-time=5",
        "--request-timeout=10",
        "--report=json",
        f"--report-json-path={report}",
    ]
    environ = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.test_api_contract",
        "NO_COLOR": "1",
        "PYTHONPATH": str(ROOT),
    }
    # Run in tmp_path: schemathesis and Hypothesis keep their caches in the working folder.
    done = subprocess.run(
        command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    assert summary["complete"] and cases["generated"] > 8 * MAX_EXAMPLES // 2, summary
    assert cases["with_failures"] == 0 and cases["errored"] == 0, summary
    assert summary["operations"]["tested"] == summary["operations"]["total"], summary
    assert all(phase["status"] == "success" for phase in summary["phases"].values()), summary
    # `pytest -rP tests/test_api_contract.py` shows this line and schemathesis's own summary.
    print(done.stdout[done.stdout.find("Test Phases:") :])
    # The server logs each unexpected error with its traceback; there must be none.
    assert "Traceback" not in log.read_text()


# Found by schemathesis (seeds 1-3): np.bincount over nothing gave integers that could not
# hold -inf, and ItemKNN and RP3Beta answered 500.
@pytest.mark.parametrize("algorithm", ["itemknn", "rp3beta"])
async def test_ratings_only_of_films_nobody_rated_get_an_answer(
    settings: Settings, tiny_zip: Path, algorithm: str
) -> None:
    app = create_app(settings.replace(source=str(tiny_zip), algorithms=(algorithm,)))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await wait_until_settled(app)
        await wait_until_available(client, {algorithm})
        # Film 60 is in the catalogue, so the ratings are valid, but nobody rated it.
        response = await client.post(
            f"/api/recommendations?algorithm={algorithm}",
            json={"ratings": [{"movie_id": 60, "rating": 5}]},
        )
        assert response.status_code == 200, await response.get_json()
