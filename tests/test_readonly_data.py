"""A replica mounts DATA_DIR read-only, as written by a build job: it maps the snapshot and serves.

The server runs in its own mount namespace (`unshare`) where DATA_DIR is bound read-only, as a
Kubernetes pod mounts a PersistentVolumeClaim with `readOnly: true`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import ALL_ALGORITHMS, Settings
from app.engine.build import build_snapshot
from app.recommender import ALGORITHMS
from tests.conftest import IN_CI
from tests.live import free_port, get_json

ROOT = Path(__file__).resolve().parents[1]
PROBE_WROTE = 97
"""The exit code of the wrapper when DATA_DIR turned out to be writable after all."""
# Bind DATA_DIR onto itself read-only, prove it cannot be written, then run the server.
READ_ONLY_SERVE = (
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 1; '
    f'if touch "$1/.probe" 2>/dev/null; then exit {PROBE_WROTE}; fi; '
    'exec "$2" -m app serve'
)


def unshare_command() -> list[str]:
    """`unshare` with a private mount namespace (and a user namespace when not root)."""
    command = ["unshare", "--mount"]
    if os.geteuid() != 0:
        command.append("--map-root-user")
    return command


@pytest.fixture
def namespaces() -> list[str]:
    """The unshare prefix; in CI a machine that cannot make a mount namespace fails."""
    problem = None
    if shutil.which("unshare") is None:
        problem = "unshare (util-linux) is not installed"
    else:
        trial = subprocess.run(
            [*unshare_command(), "true"], capture_output=True, text=True, timeout=10, check=False
        )
        if trial.returncode != 0:
            problem = f"cannot make a mount namespace here: {trial.stderr.strip()}"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return unshare_command()


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def test_a_server_on_a_read_only_data_dir_maps_the_complete_snapshot_and_fits_nothing(
    settings: Settings, tiny_zip: Path, namespaces: list[str], tmp_path: Path
) -> None:
    every = settings.replace(source=str(tiny_zip), algorithms=ALL_ALGORITHMS)
    build_snapshot(every, list(ALGORITHMS), None, quiet)  # the build job
    data = every.data_dir
    # What a build job killed mid-write leaves, and a volume that never had the fetch lock.
    (data / "snapshots" / ".ml-tiny.snapshot.0123abcd.part").write_bytes(b"half")
    (data / ".ml-tiny.lock").unlink()
    before = listing(data)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, **every.replace(port=port, workers=2).as_environ()}
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*namespaces, "sh", "-c", READ_ONLY_SERVE, "sh", str(data), sys.executable],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        # Ready, and both workers say they mapped the snapshot (each fitting nothing).
        while (
            get_json(f"{base}/readyz")[0] != 200 or log.read_text().count("from the snapshot") < 2
        ):
            code = server.poll()
            assert code != PROBE_WROTE, "DATA_DIR was writable: the test proves nothing"
            assert code is None, f"the server exited {code}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 30 s:\n{log.read_text()}"
            time.sleep(0.1)
        status, algorithms = get_json(f"{base}/api/algorithms")
        assert status == 200
        assert {a["availability"] for a in algorithms["algorithms"]} == {"ready"}
        for name in ALGORITHMS:
            status, answer = get_json(f"{base}/api/users/1/recommendations?n=2&algorithm={name}")
            assert status == 200 and answer["algorithm"] == name, name
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=15)
    printed = log.read_text()
    assert " fitted in " not in printed and "background build" not in printed
    assert "Leaving the partial snapshot" in printed
    assert "Traceback" not in printed and "Read-only file system: '" not in printed
    assert listing(data) == before
