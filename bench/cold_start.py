"""Cold start at scale: how long load() and the whole build take, and the peak memory.

Usage: python bench/cold_start.py [folder-or-zip] [--timestamps] [--load-only]

Defaults to data/synth-25m (make it with `python bench/synth.py`). Prints the wall time of
load() alone, then of the Engine's build (fetch -> load -> fit -> ready) from the same source,
and the process's peak resident memory after each.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from app.config import Settings
from app.data.movielens import load
from app.service import Engine


def peak_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="data/synth-25m")
    parser.add_argument("--timestamps", action="store_true", help="load() with timestamps")
    parser.add_argument("--load-only", action="store_true", help="skip the Engine build")
    options = parser.parse_args()

    print(f"{'step':<32} {'seconds':>8} {'peak MiB':>9}")
    if Path(options.source).is_dir():
        began = time.perf_counter()
        dataset = load(Path(options.source), with_timestamps=options.timestamps)
        seconds = time.perf_counter() - began
        print(f"{'load()':<32} {seconds:8.2f} {peak_mib():9.0f}")
        print(f"  {len(dataset.ratings):,} ratings, {len(dataset.movies):,} movies")
        del dataset
    if options.load_only:
        return
    with tempfile.TemporaryDirectory() as data_dir:
        engine = Engine(Settings(source=options.source, data_dir=Path(data_dir)))
        began = time.perf_counter()
        asyncio.run(engine.build())
        seconds = time.perf_counter() - began
    if not engine.ready:
        raise SystemExit(f"build failed: {engine.status.error}")
    print(f"{'build (fetch, load, fit)':<32} {seconds:8.2f} {peak_mib():9.0f}")


if __name__ == "__main__":
    main()
