"""Build time, memory and latency from 100k to 25M ratings, beside the dense original design.

Usage: python bench/scale.py [--sizes 100k,1M,5M,25M] [--users 1000] [--dense-budget 8]

For each size it generates MovieLens-shaped data with bench/synth.py (once, kept under
data/bench/), then runs each measurement in a fresh process (bench/engine_probe.py):
  cold   CSV -> rating matrix -> snapshot -> ready, from an empty DATA_DIR
  warm   snapshot -> ready, the restart after that
  dense  the original design as first written (pivot table + users x users cosine), where
         its estimated memory fits the budget; otherwise the memory it would need.
Latency is Model.recommend() (k=5, n=10 by default) over random users, without the answer cache.
At the largest size it also starts `movierec serve` with 1 and 2 workers and adds up the
proportional set size (PSS) of all its processes, which counts shared pages once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA = ROOT / "data" / "bench"
SIZES = {"100k": 100_000, "1M": 1_000_000, "5M": 5_000_000, "25M": 25_000_095}
GIB = 1 << 30
MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M,5M,25M")
    parser.add_argument("--users", type=int, default=1000, help="random users to time")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--dense-budget", type=float, default=8.0, help="GiB for the dense run")
    parser.add_argument("--no-workers", action="store_true", help="skip the worker memory run")
    options = parser.parse_args()
    sizes = [s.strip() for s in options.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")

    rows = []
    for name in sizes:
        folder = generate(name)
        data_dir = BENCH_DATA / f"state-{name}"
        shutil.rmtree(data_dir, ignore_errors=True)
        flags = ["--users", str(options.users), "--n", str(options.n), "--k", str(options.k)]
        cold = probe(folder, data_dir, flags)
        warm = probe(folder, data_dir, flags)
        shape = read_shape(folder)
        need = dense_bytes(*shape)
        dense = (
            probe(folder, data_dir, [*flags, "--dense"])
            if need <= options.dense_budget * GIB
            else None
        )
        rows.append((name, cold, warm, dense, need, shape))
        print(f"  {name}: done", file=sys.stderr)

    print(f"\nMachine: {machine()}")
    print(f"Model.recommend with k={options.k}, n={options.n} over {options.users} random users;")
    print("cold = CSV to ready (writes the snapshot), warm = snapshot to ready; RSS once ready.\n")
    print(
        "| ratings | users x movies | cold s | warm s | RSS MiB | peak MiB | median ms | p99 ms "
        "| dense build s | dense RSS MiB | dense median ms | dense p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _name, cold, warm, dense, need, (users, movies, _) in rows:
        dense_cells = (
            f"{dense['ready_seconds']:.1f} | {dense['rss_ready'] / MIB:,.0f} | "
            f"{dense['median_ms']:.2f} | {dense['p99_ms']:.2f}"
            if dense
            else f"not run: needs ~{need / GIB:,.0f} GiB | | |"
        )
        print(
            f"| {cold['ratings']:,} | {users:,} x {movies:,} | {cold['ready_seconds']:.1f} "
            f"| {warm['ready_seconds']:.2f} | {warm['rss_ready'] / MIB:,.0f} "
            f"| {cold['peak_rss'] / MIB:,.0f} | {warm['median_ms']:.2f} | {warm['p99_ms']:.2f} "
            f"| {dense_cells} |"
        )
    if not options.no_workers and rows:
        name = rows[-1][0]
        print(f"\nServer memory at {name} once ready (PSS of all processes, shared pages once):\n")
        print("| workers | total PSS MiB | per extra worker MiB |")
        print("|---|---|---|")
        base = None
        for workers in (1, 2):
            total = server_pss(generate(name), BENCH_DATA / f"state-{name}", workers)
            extra = "" if base is None else f"{(total - base) / MIB:,.0f}"
            base = total if base is None else base
            print(f"| {workers} | {total / MIB:,.0f} | {extra} |")


def generate(name: str) -> Path:
    """The synthetic release of this size, generated once with bench/synth.py."""
    folder = BENCH_DATA / f"synth-{name}"
    if not (folder / "ratings.csv").is_file():
        print(f"  generating {name} ratings into {folder}", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "synth.py"),
                "--ratings",
                str(SIZES[name]),
                "--seed",
                "0",
                "--out",
                str(folder),
            ],
            check=True,
        )
    return folder


def probe(folder: Path, data_dir: Path, flags: list[str]) -> dict[str, float]:
    """One run of bench/engine_probe.py in a fresh process."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "engine_probe.py"),
            str(folder),
            str(data_dir),
            *flags,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def read_shape(folder: Path) -> tuple[int, int, int]:
    """Users, movies and ratings of a generated release, from its movies file and line count."""
    users = movies = ratings = 0
    with (folder / "movies.csv").open("rb") as handle:
        movies = sum(1 for _ in handle) - 1
    with (folder / "ratings.csv").open("rb") as handle:
        last = b""
        for line in handle:
            ratings += 1
            last = line
        users = int(last.split(b",")[0]) if ratings > 1 else 0
    return users, movies, ratings - 1


def dense_bytes(users: int, movies: int, ratings: int) -> int:
    """What the dense design holds: the float64 pivot (and a copy) and the users x users matrix."""
    return 2 * users * movies * 8 + users * users * 8


def server_pss(folder: Path, data_dir: Path, workers: int) -> int:
    """Start `movierec serve` on the snapshot, wait until ready, add up the PSS of its tree."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    env = {
        **os.environ,
        "MOVIELENS_SOURCE": str(folder),
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        # Each new connection may reach any worker: ready once 10 in a row answer 200.
        deadline = time.monotonic() + 120
        while not all(ready(port) for _ in range(10)):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server on port {port} was not ready in 120 s")
            time.sleep(0.2)
        return sum(pss(pid) for pid in process_tree(server.pid))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def ready(port: int) -> bool:
    """True when /readyz on `port` answers 200 on a new connection."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def process_tree(root: int) -> list[int]:
    pids = [root]
    for pid in pids:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids.extend(int(p) for p in children.read_text().split())
    return pids


def pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def machine() -> str:
    cpus = os.cpu_count()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{cpus} cores ({model}), {memory:.0f} GiB, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    main()
