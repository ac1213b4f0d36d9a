"""A full DATA_DIR, then space freed: a failed background build heals itself (issue 24, item 4).

The report: with DATA_DIR full ("No space left on device"), then space freed, five algorithms
stayed "unavailable: its build failed" until a manual `movierec build`. Here the server runs
in its own mount namespace (`unshare`, as in test_readonly_data.py) where DATA_DIR is a small
tmpfs: room for the extracted release and the server's snapshot of the matrix, which let
`original` serve, but not for the complete snapshot the child `movierec build` writes beside
it. A filler file takes the rest of the tmpfs; deleting it through /proc/PID/root (the
server's view of its mounts) frees the space, and every enabled algorithm must then become
ready with no restart: after the backoff by itself, or at once on POST /retry.

Run with `make faults` (`pytest -m faults`). 127.0.0.1 only; each case stops its server, and
the tmpfs goes with the namespace's last process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import live
from tests.conftest import IN_CI, require_real_zip
from tests.live import ROOT, Server, environment_for, free_port, get_json, post, until
from tests.test_readonly_data import unshare_command

pytestmark = pytest.mark.faults

ENABLED = ("original", "popularity", "userknn-weighted", "rp3beta")
"""The algorithms served. RP3beta's arrays make the complete snapshot about 7 times the
matrix's (17.9 MB against 2.6 MB on ml-latest-small), and it fits in seconds."""
BUILT = ENABLED[1:]
"""What only the child build gives: all but `original`, which the matrix's snapshot serves."""
ROOM = 1 << 20
"""Free bytes left in DATA_DIR beyond what the server's first build needs: enough for lock and
marker files, far too little for the complete snapshot."""
FILLER = 32 << 20
"""The filler file: freeing it leaves room for the complete snapshot beside the matrix's."""
CONNECTIONS = 10
"""New connections in a row that must agree: each may reach any worker."""
# Mount the tmpfs on DATA_DIR, fill what the server must not have, then run the server.
SERVE_ON_TMPFS = (
    'mount -t tmpfs -o size="$2" tmpfs "$1" || exit 1; '
    'head -c "$3" /dev/zero > "$1/filler" || exit 1; '
    'exec "$4" -m app serve'
)


@pytest.fixture
def private_mounts(tmp_path: Path) -> list[str]:
    """The unshare prefix, once a tmpfs is known to mount in it; in CI failing to is a failure."""
    problem = None
    if shutil.which("unshare") is None:
        problem = "unshare (util-linux) is not installed"
    else:
        point = tmp_path / "trial"
        point.mkdir()
        trial = subprocess.run(
            [*unshare_command(), "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if trial.returncode != 0:
            problem = f"cannot mount a tmpfs in a mount namespace here: {trial.stderr.strip()}"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return unshare_command()


def footprint(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (whole pages, as tmpfs counts them)."""
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())


def first_build_footprint(source: Path, folder: Path) -> int:
    """What the extracted release and a snapshot of the matrix take, measured in `folder`.

    `movierec build` of the original alone writes what a server writes before it serves.
    """
    done = live.build(source, folder, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    size = footprint(folder / "data")
    shutil.rmtree(folder)
    return size


@pytest.fixture
def full_data_dir(private_mounts: list[str], tmp_path: Path) -> tuple[list[str], Path, int]:
    """The unshare prefix, DATA_DIR (empty, to mount on) and the tmpfs size it gets."""
    source = require_real_zip()
    needed = first_build_footprint(source, tmp_path / "measure")
    data = tmp_path / "data"
    data.mkdir()
    return private_mounts, source, needed + ROOM + FILLER


def launch(prefix: list[str], source: Path, folder: Path, size: int, **environment: str) -> Server:
    """`movierec serve` of `source` in a mount namespace, DATA_DIR a full tmpfs of `size` bytes."""
    port = free_port()
    log = folder / f"server-{port}.log"
    env = environment_for(
        source, folder, PORT=str(port), ALGORITHMS=",".join(ENABLED), **environment
    )
    command = [*prefix, "sh", "-c", SERVE_ON_TMPFS, "sh"]
    command += [env["DATA_DIR"], str(size), str(FILLER), sys.executable]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, port, log)


def filler_of(server: Server, folder: Path) -> Path:
    """The filler as the test reaches it: through the server's root, inside its namespace."""
    return Path(f"/proc/{server.process.pid}/root") / (folder / "data" / "filler").relative_to("/")


def availability(server: Server) -> dict[str, str]:
    """Each algorithm's availability in /api/algorithms, on one new connection ({} if none)."""
    status, body = get_json(server.url("/api/algorithms"))
    if status != 200:
        return {}
    return {a["name"]: a["availability"] for a in body.get("algorithms", [])}


def everywhere(server: Server, state: str, names: tuple[str, ...]) -> bool:
    """True when CONNECTIONS new connections in a row list every one of `names` as `state`."""
    for _ in range(CONNECTIONS):
        listed = availability(server)
        if any(listed.get(name) != state for name in names):
            return False
    return True


def described(server: Server) -> str:
    """What /api/algorithms says now and the end of the server's output, for a failure."""
    return f"/api/algorithms: {availability(server)}\n{server.output()[-3000:]}"


def serves_original_and_fails_the_rest(server: Server) -> set[int]:
    """Wait until the original serves and the child's build has failed for lack of space.

    The workers serving at that point, to compare with those serving after the recovery.
    """
    server.wait_ready(45)
    assert availability(server).get("original") == "ready"
    until(lambda: everywhere(server, "unavailable", BUILT), 45, lambda: described(server))
    # Why it failed is in the server log only: clients are told just that the build failed.
    assert "No space left on device" in server.output()
    return server.workers()


def recovers(server: Server, workers: set[int], timeout: float) -> float:
    """Seconds until every enabled algorithm is ready everywhere; fails after `timeout`.

    No restart on the way: the same supervisor with the same workers.
    """
    took = until(lambda: everywhere(server, "ready", ENABLED), timeout, lambda: described(server))
    assert server.process.poll() is None, "the supervisor exited"
    assert server.workers() == workers, "workers were replaced"
    return took


def test_a_build_that_ran_out_of_space_is_tried_again_by_itself_once_space_is_freed(
    full_data_dir: tuple[list[str], Path, int], tmp_path: Path
) -> None:
    prefix, source, size = full_data_dir
    # Failed tries repeat every 2, 4, 8 s while DATA_DIR is full: a pause to see "unavailable" in.
    server = launch(prefix, source, tmp_path, size, WORKERS="1", RETRY_BACKOFF="2")
    try:
        workers = serves_original_and_fails_the_rest(server)
        filler_of(server, tmp_path).unlink()
        # No POST /retry: the backoff alone brings the next try.
        recovers(server, workers, 30)
    finally:
        server.stop()


def test_a_retry_asked_for_rebuilds_what_ran_out_of_space_in_every_worker(
    full_data_dir: tuple[list[str], Path, int], tmp_path: Path
) -> None:
    prefix, source, size = full_data_dir
    # A backoff far beyond the bound below: only the POST can bring the next try in time.
    server = launch(prefix, source, tmp_path, size, WORKERS="2", RETRY_BACKOFF="300")
    try:
        workers = serves_original_and_fails_the_rest(server)
        assert len(workers) == 2
        filler_of(server, tmp_path).unlink()
        assert post(server.url("/retry")) in (200, 303)
        recovers(server, workers, 30)
    finally:
        server.stop()
