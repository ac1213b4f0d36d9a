"""What a worker's memory is made of after a long mixed soak: RSS, PSS and anonymous, over time.

Usage: python bench/soak.py [SOURCE] [--duration 300] [--rate 100] [--threads 4] [--every 30]
                            [--env NAME=VALUE ...]

SOURCE defaults to ../shared/data/ml-latest-small.zip. Starts `python -m app serve` with
WORKERS=2, default settings otherwise (every algorithm; the snapshot built by one worker's
`movierec build` child) and METRICS_PORT set, on free ports of 127.0.0.1, with DATA_DIR in a
temporary folder; `--env` adds to its environment (such as MALLOC_ARENA_MAX=2, to compare).
Once /readyz answers 200 on 10 fresh connections and every algorithm serves, a few threads send
about --rate requests a second, each on a new connection, for --duration seconds:
  - GET /?user_id=U with random n, k and algorithm, as the page or as htmx's fragment;
  - GET /rate with random ratings in the address, n, k, algorithm and filters (genre, years),
    as the page or the fragment, sometimes starting from a user (from_user=U);
  - POST /api/recommendations with a random profile of 1-30 ratings, n, k, algorithm, filters.
Answers for random profiles are nearly all distinct, so each worker's answer cache fills.
Every --every seconds it samples each worker: RSS, PSS and anonymous memory (smaps_rollup), the
resident part of the mapped snapshot (file-backed, shared) and the answer cache's bytes
(/api/status, asked on connections until each worker has answered one). At the end: the table
over time, and what each worker's RSS is made of. Stops the server and itself after --duration.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"
READY_TIMEOUT = 600
READY_CONNECTIONS = 10
MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--duration", type=int, default=300, help="seconds of load")
    parser.add_argument("--rate", type=float, default=100, help="requests a second, in all")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--every", type=int, default=30, help="seconds between samples")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    options = parser.parse_args()
    extra = dict(item.split("=", 1) for item in options.env)
    # SIGTERM to this script unwinds the `with` blocks, so the server does not outlive it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    catalogue = Catalogue.read(Path(options.source))
    with tempfile.TemporaryDirectory() as tmp, Server(options.source, Path(tmp), extra) as server:
        began = time.monotonic()
        server.wait_ready()
        print(f"ready and fitted after {time.monotonic() - began:.0f} s", file=sys.stderr)
        samples = [server.sample(0)]
        load = Load(server.port, catalogue, server.algorithms(), options.rate, options.threads)
        load.start()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < options.duration:
            time.sleep(min(options.every, options.duration - elapsed))
            samples.append(server.sample(round(time.monotonic() - start)))
            print(f"sampled at {samples[-1]['t']} s", file=sys.stderr)
        load.stop()
        report(samples, load, options, extra)


class Catalogue:
    """Users, films and genres of the dataset, for random requests."""

    def __init__(self, users: list[int], movies: list[int], genres: list[str]) -> None:
        self.users, self.movies, self.genres = users, movies, genres

    @classmethod
    def read(cls, source: Path) -> Catalogue:
        """Read them from a MovieLens zip (ratings.csv and movies.csv)."""
        users: set[int] = set()
        movies: list[int] = []
        genres: set[str] = set()
        with zipfile.ZipFile(source) as archive:
            for name in archive.namelist():
                if name.endswith("/movies.csv"):
                    for row in csv.DictReader(io.TextIOWrapper(archive.open(name), "utf-8")):
                        movies.append(int(row["movieId"]))
                        genres.update(row["genres"].split("|"))
                elif name.endswith("/ratings.csv"):
                    for row in csv.DictReader(io.TextIOWrapper(archive.open(name), "utf-8")):
                        users.add(int(row["userId"]))
        genres.discard("(no genres listed)")
        return cls(sorted(users), movies, sorted(genres))


class Server:
    """`python -m app serve` with two workers, in its own session; stopped on exit."""

    def __init__(self, source: str, folder: Path, extra: dict[str, str]) -> None:
        self.port, self.metrics_port = _free_port(), _free_port()
        self.data = folder / "data"
        self.log = (folder / "server.log").open("wb")
        env = {
            **os.environ,
            "MOVIELENS_SOURCE": str(source),
            "DATA_DIR": str(self.data),
            "WORKERS": "2",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            **extra,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log.close()

    def wait_ready(self) -> None:
        """Until /readyz is 200 on 10 fresh connections in a row and no algorithm is preparing."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode} at start")
            if self._ready() and len(self.workers()) == 2:
                return
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready within {READY_TIMEOUT} s")

    def _ready(self) -> bool:
        for _ in range(READY_CONNECTIONS):
            if request(self.port, "GET", "/readyz")[0] != 200:
                return False
            status, body = request(self.port, "GET", "/api/algorithms")
            listed = json.loads(body).get("algorithms", []) if status == 200 else []
            if not listed or any(a["availability"] == "preparing" for a in listed):
                return False
        return True

    def algorithms(self) -> list[str]:
        """The algorithms this server serves."""
        _, body = request(self.port, "GET", "/api/algorithms")
        listed = json.loads(body)["algorithms"]
        return [a["name"] for a in listed if a["availability"] == "ready"]

    def workers(self) -> list[int]:
        """The worker processes: the children of the supervisor's fork server."""
        children: dict[int, list[tuple[int, bytes]]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append((int(entry.name), command))
        servers = [pid for pid, cmd in children.get(self.process.pid, []) if b"forkserver" in cmd]
        return sorted(pid for server in servers for pid, _ in children.get(server, []))

    def sample(self, at: int) -> dict[str, Any]:
        """Each worker's memory now, in bytes, keyed by pid; `t` is the second of the soak."""
        workers = self.workers()
        caches = self._cache_bytes(workers)
        taken: dict[str, Any] = {"t": at, "workers": {}}
        for pid in workers:
            with contextlib.suppress(OSError):
                taken["workers"][pid] = {
                    **_rollup(pid),
                    "snapshot": _mapped_under(pid, self.data),
                    "cache": caches.get(pid),
                }
        return taken

    def _cache_bytes(self, workers: list[int]) -> dict[int, int]:
        """The answer cache's bytes of each worker: /api/status on new connections until every
        worker has answered, each answer's worker found by the socket it accepted."""
        found: dict[int, int] = {}
        for _ in range(40):
            if len(found) == len(workers):
                break
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("GET", "/api/status")
                answer = connection.getresponse()
                body = json.loads(answer.read())
                client_port = connection.sock.getsockname()[1]
                pid = _worker_holding(workers, self.port, client_port)
                if pid is not None:
                    found[pid] = body["answer_cache"]["bytes"]
            except (OSError, ValueError, KeyError):
                pass
            finally:
                connection.close()
        return found


class Load:
    """A few threads sending a mix of pages, fragments and API calls at about `rate` a second."""

    def __init__(
        self, port: int, catalogue: Catalogue, algorithms: list[str], rate: float, threads: int
    ) -> None:
        self.port, self.catalogue, self.algorithms = port, catalogue, algorithms
        self.interval = threads / rate
        self.statuses: Counter[str] = Counter()
        self.sent = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def start(self) -> None:
        """Start sending."""
        self._began = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.seconds = time.monotonic() - self._began

    def _run(self, seed: int) -> None:
        chance = random.Random(seed)
        due = time.monotonic()
        while not self._stop.is_set():
            method, path, body, headers = self._one(chance)
            status, _ = request(self.port, method, path, body, headers)
            with self._lock:
                self.sent += 1
                self.statuses[str(status) if status else "no answer"] += 1
            due = max(due + self.interval, time.monotonic() - 1)  # no burst after a stall
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _one(self, chance: random.Random) -> tuple[str, str, bytes | None, dict[str, str]]:
        settings = {
            "n": chance.randint(1, 50),
            "k": chance.randint(1, 100),
            "algorithm": chance.choice(self.algorithms),
        }
        fragment = {"HX-Request": "true"} if chance.random() < 0.5 else {}
        kind = chance.random()
        if kind < 0.35:
            query = {"user_id": chance.choice(self.catalogue.users), **settings}
            return "GET", "/?" + urlencode(query), None, fragment
        filters = self._filters(chance)
        profile = chance.sample(self.catalogue.movies, chance.randint(1, 30))
        stars = [chance.randint(1, 10) / 2 for _ in profile]
        if kind < 0.65:
            kept = ",".join(f"{m}:{s}" for m, s in zip(profile, stars, strict=True))
            query = {**settings, **filters, "r": kept}
            if chance.random() < 0.1:
                query["from_user"] = chance.choice(self.catalogue.users)
            return "GET", "/rate?" + urlencode(query), None, fragment
        ratings = [{"movie_id": m, "rating": s} for m, s in zip(profile, stars, strict=True)]
        path = "/api/recommendations?" + urlencode({**settings, **filters})
        body = json.dumps({"ratings": ratings}).encode()
        return "POST", path, body, {"Content-Type": "application/json"}

    def _filters(self, chance: random.Random) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        if chance.random() < 0.3:
            filters["genre"] = chance.choice(self.catalogue.genres)
        if chance.random() < 0.3:
            low = chance.randint(1930, 2015)
            filters.update(year_from=low, year_to=chance.randint(low, 2018))
        return filters


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Status and body of one request on a new connection (status 0 when nothing answered)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def _rollup(pid: int) -> dict[str, int]:
    """RSS, PSS and anonymous memory of `pid` in bytes, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "anon": fields["Anonymous"]}


def _mapped_under(pid: int, folder: Path) -> int:
    """Resident bytes of `pid`'s mappings of files under `folder` (the snapshot)."""
    resident, inside = 0, False
    prefix = str(folder)
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not line[0].isupper():
            inside = len(head) == 6 and head[5].startswith(prefix)
        elif inside and line.startswith("Rss:"):
            resident += int(line.split()[1]) * 1024
    return resident


def _worker_holding(workers: list[int], port: int, client_port: int) -> int | None:
    """The worker holding the accepted end of the connection from `client_port` to `port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[2].endswith(f":{client_port:04X}"):
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def report(
    samples: list[dict[str, Any]], load: Load, options: argparse.Namespace, extra: dict[str, str]
) -> None:
    """Print the table over time and what each worker's RSS is made of at the end."""
    settings = " ".join(f"{k}={v}" for k, v in extra.items()) or "default settings"
    print(
        f"\nSoak: WORKERS=2, {settings}, {load.sent:,} requests in {load.seconds:.0f} s "
        f"({load.sent / load.seconds:.0f} req/s, {options.threads} threads, "
        f"{os.cpu_count()} CPUs); answers: "
        + ", ".join(f"{status} x{count:,}" for status, count in sorted(load.statuses.items()))
    )
    print("\nMiB per worker (RSS / PSS / anonymous / snapshot resident / answer cache):\n")
    pids = sorted({pid for taken in samples for pid in taken["workers"]})
    print("| s | " + " | ".join(f"worker {pid}" for pid in pids) + " |")
    print("|---|" + "---|" * len(pids))
    for taken in samples:
        cells = []
        for pid in pids:
            m = taken["workers"].get(pid)
            cells.append(
                "-"
                if m is None
                else f"{_mib(m['rss'])} / {_mib(m['pss'])} / {_mib(m['anon'])} / "
                f"{_mib(m['snapshot'])} / {_mib(m['cache'])}"
            )
        print(f"| {taken['t']} | " + " | ".join(cells) + " |")
    first, last = samples[0]["workers"], samples[-1]["workers"]
    print("\nWhat each worker's RSS is made of at the end (MiB):\n")
    print("| part | " + " | ".join(f"worker {pid}" for pid in pids) + " |")
    print("|---|" + "---|" * len(pids))
    parts: dict[str, list[str]] = {name: [] for name in BREAKDOWN}
    for pid in pids:
        if pid not in first or pid not in last:
            for row in parts.values():
                row.append("-")
            continue
        start, end = first[pid], last[pid]
        cache = end["cache"] or 0
        code = end["rss"] - end["anon"] - end["snapshot"]
        values = {
            "mapped snapshot (file-backed, shared)": end["snapshot"],
            "interpreter and libraries (file-backed code)": code,
            "interpreter, modules, model objects at ready (anonymous)": start["anon"],
            "answer cache (its own count)": cache,
            "the rest: malloc arenas, fragmentation": end["anon"] - start["anon"] - cache,
            "RSS": end["rss"],
        }
        for name, value in values.items():
            parts[name].append(_mib(value))
    for name, row in parts.items():
        print(f"| {name} | " + " | ".join(row) + " |")


BREAKDOWN = (
    "mapped snapshot (file-backed, shared)",
    "interpreter and libraries (file-backed code)",
    "interpreter, modules, model objects at ready (anonymous)",
    "answer cache (its own count)",
    "the rest: malloc arenas, fragmentation",
    "RSS",
)


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / MIB:.0f}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
