"""HTTP throughput of the recommendation fragment beside a bare Quart app in the same run, with wrk.

Usage: python bench/http_load.py [SOURCE] [--duration 15] [--connections 64] [--workers 1]
                                 [--root CHECKOUT] [--only bare,cached,uncached]

SOURCE defaults to ../shared/data/ml-latest-small.zip. Every server listens on a free port on
127.0.0.1 and wrk (2 threads) asks each for /?user_id=U&n=10&k=5 with `HX-Request: true` (the
htmx fragment) and `Accept-Encoding: gzip, br` (a browser's), U drawn at random from every user
in the dataset by a Lua script:
  bare      bench/bare_app.py, a Quart app with one route returning a constant, one worker:
            the ceiling Quart and Hypercorn set on this machine;
  cached    `python -m app serve`, answer cache on (RESULT_CACHE default), after a 15 s
            warm-up that puts every user's answer in each worker's cache;
  uncached  the same with RESULT_CACHE=0, so every request computes its answer; /healthz is
            probed every 20 ms from another connection meanwhile, and its p99 is the event
            loop's responsiveness under load.
The app runs once per count in --workers ("1,2" adds two workers). The table gives each run's
share of the bare app's req/s, then whether the targets hold: uncached at least 30% of bare,
cached at least 80%, and no errors (socket errors plus non-2xx answers) in any run.
`--root` serves the app of another checkout (for example main's, exported to a folder with
`git archive`) with this one's bare app and virtualenv, for before-and-after figures.
Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"
BARE_APP = Path(__file__).resolve().parent / "bare_app.py"
# ml-latest-small's users, for the bare app (which ignores them) and if /api/status has no range.
DEFAULT_USERS = (1, 610)
UNCACHED_TARGET = 0.30
CACHED_TARGET = 0.80
CACHE_WARMUP = 15
# Enough for connections, imports and the first answers to settle before a measured run.
SHORT_WARMUP = 3
READY_TIMEOUT = 300
# BLAS threads started inside request threads fight the event loop for 2 cores; one each.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LUA = """
math.randomseed(42)
local low, high = {low}, {high}
local headers = {{["HX-Request"] = "true", ["Accept-Encoding"] = "gzip, br"}}
request = function()
  local id = math.random(low, high)
  return wrk.format("GET", "/?user_id=" .. id .. "&n=10&k=5", headers)
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1", help="app worker counts, e.g. 1,2")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose app is served (default: this)"
    )
    parser.add_argument(
        "--only", default="bare,cached,uncached", help="which of bare,cached,uncached to run"
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    worker_counts = [int(w) for w in options.workers.split(",")]
    runs = set(options.only.split(","))
    if "bare" not in runs:
        raise SystemExit("--only must include bare: every figure is a share of it")
    # SIGTERM to this script unwinds the `with` blocks, so no server outlives it.
    signal.signal(signal.SIGTERM, _exit_on_signal)

    rows: list[dict[str, Any]] = []
    health: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # One data folder for every app run: the first builds the snapshot, the others load it.
        data_dir, scripts = Path(tmp) / "data", Path(tmp)
        with BareServer() as bare:
            script = _lua(scripts, *DEFAULT_USERS)
            wrk(bare.port, script, SHORT_WARMUP, options.connections)
            rows.append({"server": "bare Quart", "workers": 1, "cache": "-"})
            rows[-1].update(measured(bare, script, options.duration, options.connections))
        _done(rows[-1])
        for workers in worker_counts:
            for cache in [c for c in (True, False) if ("cached", "uncached")[not c] in runs]:
                with AppServer(options.source, data_dir, workers, cache, options.root) as app:
                    script = _lua(scripts, app.low, app.high)
                    # Cache on: long enough for every user's answer to reach each worker's
                    # cache (about 1,200 misses at a few ms each), so this is the steady state.
                    warmup = CACHE_WARMUP if cache else SHORT_WARMUP
                    wrk(app.port, script, warmup, options.connections)
                    probe = None if cache else HealthProbe(app.port)
                    run = measured(app, script, options.duration, options.connections)
                    if probe is not None:
                        health[workers] = probe.stop()
                rows.append({"server": "movierec", "workers": workers, "cache": _on(cache), **run})
                _done(rows[-1])

    report(rows, health, options)


def report(
    rows: list[dict[str, Any]], health: dict[int, float], options: argparse.Namespace
) -> None:
    """Print the table and whether each target holds."""
    bare_rps = rows[0]["rps"]
    print(
        f"\nwrk -t2 -c{options.connections} -d{options.duration}s, "
        f"GET /?user_id=<random>&n=10&k=5 with HX-Request: true and Accept-Encoding: gzip, br, "
        f"127.0.0.1, "
        f"{os.cpu_count()} CPUs\n"
    )
    bare_cpu = rows[0]["cpu_ms"]
    print(
        "| server | workers | answer cache | req/s | share of bare | p50 ms | p99 ms | errors "
        "| server CPU ms/request | share of bare by CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['server']} | {row['workers']} | {row['cache']} | {row['rps']:,.0f} "
            f"| {row['rps'] / bare_rps:.0%} | {row['p50']:.1f} | {row['p99']:.1f} "
            f"| {row['errors']} | {row['cpu_ms']:.3f} | {bare_cpu / row['cpu_ms']:.0%} |"
        )
    print(
        "\nServer CPU: user and system time of the server's processes over the measured run,"
        " per request answered; its share is bare's CPU per request over the row's, which"
        " other load on the machine moves less than req/s.\n"
    )
    for workers, p99 in health.items():
        print(f"/healthz p99 during the uncached run, {workers} worker(s): {p99:.1f} ms")
    for row in rows[1:]:
        target = CACHED_TARGET if row["cache"] == "on" else UNCACHED_TARGET
        share = row["rps"] / bare_rps
        print(
            f"{'cached' if row['cache'] == 'on' else 'uncached'}, {row['workers']} worker(s): "
            f"{share:.0%} of bare, target >= {target:.0%}: {_verdict(share >= target)}"
        )
    errors = sum(row["errors"] for row in rows)
    print(f"errors over every run: {errors}, target 0: {_verdict(errors == 0)}")


class Server:
    """A command in its own process group on a free 127.0.0.1 port; killed on leaving `with`."""

    def __init__(self, env: dict[str, str], root: Path = ROOT) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            self.port = free.getsockname()[1]
        self.process = subprocess.Popen(
            self.command(),
            # `python -m app` imports the app of the folder it starts in.
            cwd=root,
            env={**os.environ, **SINGLE_THREADED, **env, "PORT": str(self.port)},
            start_new_session=True,
        )

    def command(self) -> list[str]:
        """The command line that serves on self.port."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers as it will under load."""
        raise NotImplementedError

    def __enter__(self) -> Server:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.__exit__()
                raise SystemExit(f"the server exited with {self.process.returncode} at start")
            try:
                if self.ready():
                    return self
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit(f"the server was not ready within {READY_TIMEOUT} s")

    def __exit__(self, *exc: object) -> None:
        # SIGTERM first so it stops as it would in production; SIGKILL whatever is left of the
        # group (a worker that outlived its parent included) once the grace period is over.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the live processes of this server's group (Linux)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command: state, ppid, pgrp, ... utime and stime are fields 14 and 15.
            if int(fields[2]) == self.process.pid:
                total += int(fields[11]) + int(fields[12])
        return total / ticks


class BareServer(Server):
    """bench/bare_app.py, one worker."""

    def __init__(self) -> None:
        super().__init__({})

    def command(self) -> list[str]:
        return [sys.executable, str(BARE_APP), "--port", str(self.port)]

    def ready(self) -> bool:
        with urllib.request.urlopen(self.url("/?user_id=1&n=10&k=5"), timeout=2) as answer:
            return answer.status == 200


class AppServer(Server):
    """`python -m app serve` with the dataset, ready once every algorithm is fitted."""

    def __init__(
        self, source: str, data_dir: Path, workers: int, cache: bool, root: Path = ROOT
    ) -> None:
        env = {
            "MOVIELENS_SOURCE": source,
            "DATA_DIR": str(data_dir),
            "WORKERS": str(workers),
            "LOG_LEVEL": "WARNING",
        }
        if not cache:
            env["RESULT_CACHE"] = "0"
        self.workers = workers
        self.low, self.high = DEFAULT_USERS
        super().__init__(env, root)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app", "serve"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=2) as answer:
                if answer.status != 200:
                    return False
        except urllib.error.HTTPError:
            return False  # 503 while it builds
        # Each worker fits on its own and each new connection may reach either, so wait until
        # many answers in a row say no algorithm is still preparing.
        if not all(self._algorithms_fitted() for _ in range(10 * self.workers)):
            return False
        with urllib.request.urlopen(self.url("/api/status"), timeout=2) as answer:
            users = json.load(answer).get("user_id_range")
        if users:
            self.low, self.high = users
        return True

    def _algorithms_fitted(self) -> bool:
        with urllib.request.urlopen(self.url("/api/algorithms"), timeout=2) as answer:
            listed = json.load(answer)["algorithms"]
        return all(a["availability"] != "preparing" for a in listed)


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
            except (OSError, http.client.HTTPException):
                connection.close()
                ok = False
            if ok:
                self.samples.append((time.perf_counter() - started) * 1000)
            else:
                self.failures += 1

    def stop(self) -> float:
        """Stop probing; the p99 latency in ms."""
        self._stop.set()
        self._thread.join(10)
        if self.failures:
            print(f"  /healthz failed {self.failures} times", file=sys.stderr)
        if len(self.samples) < 2:
            return float("nan")
        return statistics.quantiles(self.samples, n=100)[98]


def measured(server: Server, script: Path, duration: int, connections: int) -> dict[str, float]:
    """wrk's figures for `server`, and the CPU time its processes spent per request."""
    before = server.cpu_seconds()
    run = wrk(server.port, script, duration, connections)
    run["cpu_ms"] = (server.cpu_seconds() - before) * 1000 / max(run["requests"], 1)
    return run


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
        timeout=duration + 60,
    ).stdout
    # wrk prints these two lines only when there is something to count.
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    return {
        "rps": float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        "requests": float(_find(r"(\d+) requests in", output)),
        "p50": _millis(_find(r"^\s+50%\s+([\d.]+\w+)", output)),
        "p99": _millis(_find(r"^\s+99%\s+([\d.]+\w+)", output)),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def _find(pattern: str, output: str) -> str:
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no {pattern!r} in wrk's output:\n{output}")
    return found.group(1)


def _millis(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _lua(folder: Path, low: int, high: int) -> Path:
    script = folder / f"users-{low}-{high}.lua"
    script.write_text(LUA.format(low=low, high=high))
    return script


def _on(cache: bool) -> str:
    return "on" if cache else "off"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _done(row: dict[str, Any]) -> None:
    print(
        f"  {row['server']}, {row['workers']} worker(s), cache {row['cache']}: done",
        file=sys.stderr,
    )


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
