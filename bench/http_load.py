"""HTTP throughput and latency of the recommendation fragment with wrk, for 1 and 2 workers.

Usage: python bench/http_load.py [SOURCE] [--duration 30] [--connections 64] [--workers 1,2]

Starts `movierec serve` on 127.0.0.1 (SOURCE defaults to ../shared/data/ml-latest-small.zip),
waits for /readyz, then for each worker count:
  mixed     wrk asks for the htmx fragment /?user_id=U&n=10&k=5 with U drawn at random from
            every user in the dataset (a Lua script), answer cache on (RESULT_CACHE default),
            after a 15 s warm-up that puts every user's answer in each worker's cache;
  uncached  the same with RESULT_CACHE=0, so every request computes its answer;
  health    /healthz probed every 20 ms from another connection while the uncached run
            saturates the server: its p99 is the event loop's responsiveness under load.
Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"
LUA = """
math.randomseed(42)
local low, high = {low}, {high}
request = function()
  local id = math.random(low, high)
  return wrk.format("GET", "/?user_id=" .. id .. "&n=10&k=5", {{["HX-Request"] = "true"}})
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1,2")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    results = []
    with tempfile.TemporaryDirectory() as data_dir:
        for workers in [int(w) for w in options.workers.split(",")]:
            for cache in ("on", "off"):
                with Server(options.source, Path(data_dir), workers, cache == "on") as server:
                    script = Path(data_dir) / "mixed.lua"
                    script.write_text(LUA.format(low=server.low, high=server.high))
                    # Warm-up: long enough for every user's answer to reach each worker's cache
                    # (about 1,200 misses at a few ms each), so "on" measures the steady state.
                    wrk(server.port, script, 15, options.connections)
                    probe = HealthProbe(server.port) if cache == "off" else None
                    run = wrk(server.port, script, options.duration, options.connections)
                    health = probe.stop() if probe else None
                results.append((workers, cache, run, health))
                print(f"  {workers} worker(s), cache {cache}: done", file=sys.stderr)

    print(f"\nwrk, {options.connections} connections, {options.duration} s, htmx fragment")
    print("/?user_id=<random>&n=10&k=5 on 127.0.0.1\n")
    print("| workers | answer cache | req/s | p50 ms | p99 ms | errors | /healthz p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for workers, cache, run, health in results:
        health_cell = f"{health:.1f}" if health is not None else ""
        print(
            f"| {workers} | {cache} | {run['rps']:,.0f} | {run['p50']:.1f} | {run['p99']:.1f} "
            f"| {run['errors']} | {health_cell} |"
        )


class Server:
    """`movierec serve` in its own process group, ready on a free port."""

    def __init__(self, source: str, data_dir: Path, workers: int, cache: bool) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            self.port = free.getsockname()[1]
        env = {
            **os.environ,
            "MOVIELENS_SOURCE": source,
            "DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "WORKERS": str(workers),
            "LOG_LEVEL": "WARNING",
        }
        if not cache:
            env["RESULT_CACHE"] = "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, start_new_session=True
        )
        self.low, self.high = 1, 1
        self.workers = workers

    def _algorithms_fitted(self) -> bool:
        with urllib.request.urlopen(self.url("/api/algorithms"), timeout=2) as answer:
            listed = json.load(answer)["algorithms"]
        return all(a["availability"] != "preparing" for a in listed)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=2) as answer:
                    status = json.load(answer)
                # Each worker fits on its own and each new connection may reach either, so
                # wait until many answers in a row say every algorithm is fitted.
                if status.get("state") == "ready" and all(
                    self._algorithms_fitted() for _ in range(10 * self.workers)
                ):
                    self.low, self.high = status["user_id_range"]
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit("the server did not become ready")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class HealthProbe:
    """GET /healthz every 20 ms on one keep-alive connection, in a thread, recording latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                connection.close()
                ok = False
            if ok:
                self.samples.append((time.perf_counter() - started) * 1000)
            else:
                self.failures += 1

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        if self.failures:
            print(f"  /healthz failed {self.failures} times", file=sys.stderr)
        return float(np.percentile(self.samples, 99)) if self.samples else float("nan")


def wrk(port: int, script: Path, duration: int, connections: int) -> dict[str, float]:
    """Run wrk with the Lua script and parse its summary."""
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _millis(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _millis(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def _millis(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


if __name__ == "__main__":
    main()
