"""A worker's threads share a bounded number of glibc malloc arenas (app.serve.worker), which
keeps its heap from growing with one arena per thread under a long soak (bench/soak.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from app.serve.worker import MALLOC_ARENAS

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")

# Eight threads allocate at once, as the thread pool that computes answers does; glibc's
# malloc_info lists one <heap> per arena in use.
PROBE = """
import ctypes, sys, threading
from app.serve.worker import limit_malloc_arenas

limited = limit_malloc_arenas() if sys.argv[1] == "limit" else None
together = threading.Barrier(8)

def allocate():
    kept = [bytearray(4096) for _ in range(100)]
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
report = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, report)
libc.fclose(report)
print(limited)
"""


def arenas_used(tmp_path: Path, mode: str, **environment: str) -> tuple[str, int]:
    """What limit_malloc_arenas answered in a fresh interpreter, and the arenas its threads used."""
    report = tmp_path / f"malloc-{mode}.xml"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(report)],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip(), report.read_text().count("<heap nr=")


def test_a_worker_limits_its_threads_to_a_few_malloc_arenas(tmp_path: Path) -> None:
    answered, limited = arenas_used(tmp_path, "limit")
    _, unlimited = arenas_used(tmp_path, "free")
    assert answered == "True"
    assert limited <= MALLOC_ARENAS < unlimited


def test_an_operators_malloc_arena_max_is_left_as_it_is(tmp_path: Path) -> None:
    answered, used = arenas_used(tmp_path, "limit", MALLOC_ARENA_MAX="4")
    assert answered == "False"
    assert MALLOC_ARENAS < used <= 4
