"""The image, run with Podman as a deployment would: healthy, ready, the same answers as the app,
non-root on a read-only root, its volume reused, and a graceful stop.

`make container-test` builds the image (scripts/container-image) and runs these; `make test` leaves
them out. The containers share the host's network, so they reach the tests' dataset server on
127.0.0.1 and listen on a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from app import create_app
from app.config import Settings
from tests.conftest import IN_CI, DatasetServer, require_real_zip, wait_until_settled

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
PODMAN = ROOT / "scripts" / "podman"
IMAGE = os.environ.get("MOVIEREC_IMAGE", "localhost/movierec:test")
BASE_IMAGE = "localhost/movierec-base:bookworm-python3"  # as scripts/container-image names it
UID = 10001
# What the app's own layers may add to the base (the virtualenv is most of it).
LAYERS_BUDGET_MB = 300


def podman_sync(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/podman and wait (for fixtures, outside the event loop's work)."""
    return subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class Result:
    """What a podman command returned."""

    code: int
    out: str
    err: str


async def podman(*args: str, check: bool = True, timeout: float = 60) -> Result:
    """Run scripts/podman without blocking the loop (the dataset server shares it)."""
    process = await asyncio.create_subprocess_exec(
        str(PODMAN), *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    result = Result(process.returncode or 0, out.decode().strip(), err.decode().strip())
    if check and result.code != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.code}: {result.err}")
    return result


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print a measured figure past pytest's capture."""
    with capsys.disabled():
        print(f"\n  [container] {line}", end="")


@dataclass
class Container:
    """A running container of the image, listening on 127.0.0.1:port."""

    name: str
    port: int
    started: float

    def url(self, path: str) -> str:
        """Absolute URL of `path` on this container."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET `path`; the status and the body."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url(path)) as response,
        ):
            return response.status, await response.read()

    async def wait_healthy(self, timeout: float = 60) -> float:
        """Run the image's HEALTHCHECK until it passes; seconds since `podman run`."""
        while time.perf_counter() - self.started < timeout:
            check = await podman("healthcheck", "run", self.name, check=False, timeout=20)
            if check.code == 0:
                return time.perf_counter() - self.started
            await self.assert_running()
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not healthy after {timeout}s:\n{await self.logs()}")

    async def wait_ready(self, timeout: float = 60) -> float:
        """Poll /readyz until 200 ten times in a row; seconds since `podman run`.

        Each new connection may reach any of the server's workers, so one answer says nothing
        of the others.
        """
        while time.perf_counter() - self.started < timeout:
            statuses = []
            for _ in range(10):
                try:
                    statuses.append((await self.get("/readyz"))[0])
                except aiohttp.ClientError:
                    statuses.append(0)
                if statuses[-1] != 200:
                    break
            if statuses == [200] * 10:
                return time.perf_counter() - self.started
            await self.assert_running()
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{await self.logs()}")

    async def assert_running(self) -> None:
        """Fail with the logs if the container has exited."""
        state = await self.inspect("{{.State.Status}}")
        assert state == "running", f"{self.name} is {state}:\n{await self.logs()}"

    async def inspect(self, template: str) -> str:
        """`podman inspect --format template` of this container."""
        return (await podman("inspect", "--format", template, self.name)).out

    async def exec(self, *command: str, check: bool = True) -> Result:
        """Run `command` inside the container, as its user."""
        return await podman("exec", self.name, *command, check=check)

    async def logs(self) -> str:
        """Everything the container printed."""
        process = await asyncio.create_subprocess_exec(
            str(PODMAN), "logs", self.name, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await process.communicate()
        return out.decode()


Start = Callable[..., Awaitable[Container]]


@pytest.fixture(scope="module")
def image() -> str:
    """The image under test; in CI a missing Podman or image fails, elsewhere it skips."""
    problem = None
    if shutil.which("podman") is None:
        problem = "podman is not installed (apt-get install podman runc debootstrap)"
    elif podman_sync("image", "exists", IMAGE).returncode != 0:
        problem = f"no image {IMAGE}; build it with `make container-image`"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return IMAGE


@pytest.fixture
def volume(image: str) -> Iterator[str]:
    """A fresh named volume for /app/data, removed afterwards."""
    name = f"movierec-test-{uuid.uuid4().hex[:8]}"
    yield name
    podman_sync("volume", "rm", "--force", name)


@pytest.fixture
async def start(image: str) -> AsyncIterator[Start]:
    """Start containers of the image as a deployment would; all are removed afterwards."""
    names: list[str] = []

    async def run(volume: str, source: str, *options: str) -> Container:
        name = f"movierec-test-{uuid.uuid4().hex[:8]}"
        port = free_port()
        started = time.perf_counter()
        names.append(name)
        await podman(
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            "host",
            # As Docker's --read-only: no tmpfs on /tmp either, only the data volume is writable.
            "--read-only",
            "--read-only-tmpfs=false",
            "--volume",
            f"{volume}:/app/data",
            "--env",
            "HOST=127.0.0.1",
            "--env",
            f"PORT={port}",
            "--env",
            f"MOVIELENS_SOURCE={source}",
            *options,
            image,
        )
        return Container(name, port, started)

    yield run
    for name in names:
        await podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture
def real_zip_url(dataset_server: DatasetServer) -> str:
    """ml-latest-small served by the tests' dataset server on the host's loopback."""
    return dataset_server.serve_bytes("/ml-latest-small.zip", require_real_zip().read_bytes())


async def test_becomes_healthy_and_ready_from_a_download(
    start: Start,
    volume: str,
    real_zip_url: str,
    dataset_server: DatasetServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    container = await start(volume, real_zip_url)
    healthy = await container.wait_healthy()
    ready = await container.wait_ready()
    report(capsys, f"podman run -> healthy {healthy:.2f}s, -> ready {ready:.2f}s (download)")
    assert dataset_server.hits["/ml-latest-small.zip"] == 1
    status, body = await container.get("/healthz")
    assert status == 200 and b"ok" in body


async def test_recommends_what_the_app_computes_outside(
    start: Start, volume: str, real_zip_url: str, tmp_path: Path
) -> None:
    container = await start(volume, real_zip_url)
    await container.wait_ready()
    outside = create_app(Settings(source=str(require_real_zip()), data_dir=tmp_path / "data"))
    async with outside.test_app() as test_app:
        await wait_until_settled(outside, timeout=60)
        await asyncio.wait_for(outside.extensions["service"].settled(), 120)
        client = test_app.test_client()
        for _ in range(600):  # every algorithm fitted inside too, so both sides can answer
            status, body = await container.get("/api/algorithms")
            if status == 200 and all(
                a["availability"] == "ready" for a in json.loads(body)["algorithms"]
            ):
                break
            await asyncio.sleep(0.2)
        cases = [(1, 10, 5, "original"), (42, 20, 30, "original"), (610, 50, 100, "original")]
        cases += [(1, 10, 5, "ease"), (42, 20, 5, "itemknn"), (610, 10, 5, "popularity")]
        for user_id, n, k, algorithm in cases:
            path = f"/api/users/{user_id}/recommendations?n={n}&k={k}&algorithm={algorithm}"
            status, body = await container.get(path)
            expected = await (await client.get(path)).get_json()
            assert status == 200
            assert json.loads(body) == expected
            assert len(expected["recommendations"]) == n


async def test_runs_as_non_root_with_only_the_volume_writable(
    start: Start, volume: str, real_zip_url: str
) -> None:
    container = await start(volume, real_zip_url)
    await container.wait_ready()
    assert (await container.exec("id", "-u")).out == str(UID)
    status = (await container.exec("cat", "/proc/1/status")).out
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [str(UID)] * 4, "PID 1 (Hypercorn) must run as the movierec user"
    cmdline = (await container.exec("cat", "/proc/1/cmdline")).out
    assert cmdline.split("\0")[:4] == ["python", "-m", "app", "serve"]

    assert await container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    for path in ("/app/probe", "/opt/venv/probe", "/tmp/probe"):
        denied = await container.exec("touch", path, check=False)
        assert denied.code != 0 and "Read-only file system" in denied.err, path
    assert "ml-latest-small" in (await container.exec("ls", "/app/data")).out
    await container.exec("touch", "/app/data/probe")


async def test_second_container_reuses_the_volume_without_downloading(
    start: Start,
    volume: str,
    real_zip_url: str,
    dataset_server: DatasetServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = await start(volume, real_zip_url)
    await first.wait_ready()
    await podman("stop", first.name)
    assert dataset_server.hits["/ml-latest-small.zip"] == 1

    second = await start(volume, real_zip_url)
    ready = await second.wait_ready()
    report(capsys, f"podman run -> ready {ready:.2f}s (cached volume)")
    assert dataset_server.hits["/ml-latest-small.zip"] == 1, "the second start must use the cache"
    assert "Using cached dataset" in await second.logs()


# A page of 50 films and 100 neighbours, about 57 kB. Over HTTP/2 the client grants the server
# only WINDOW bytes of it until it sends a WINDOW_UPDATE, so however large the kernel's socket
# buffers, the server is still sending that answer when SIGTERM arrives: a slow reader.
PAGE = "/?user_id=42&n=50&k=100"
WINDOW = 1024
READ_AFTER = 1.5


@dataclass
class SlowRead:
    """One HTTP/2 request whose answer the client reads only when told to."""

    sock: socket.socket
    connection: h2.connection.H2Connection
    status: int = 0
    content_length: int = 0
    body: bytearray = field(default_factory=bytearray)
    unread: int = 0
    ended: bool = False

    @classmethod
    def start(cls, port: int) -> SlowRead:
        """Send the request (HTTP/2 with prior knowledge) and read until the first bytes arrive."""
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW}
        )
        connection.initiate_connection()
        headers = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{port}"),
            (":path", PAGE),
        ]
        connection.send_headers(1, headers, end_stream=True)
        read = cls(socket.create_connection(("127.0.0.1", port), timeout=15), connection)
        read.sock.sendall(connection.data_to_send())
        while not read.body:
            read.receive()
        return read

    def receive(self) -> None:
        """Handle one read from the socket."""
        data = self.sock.recv(65536)
        assert data, f"connection closed after {len(self.body)} of {self.content_length} bytes"
        for event in self.connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                fields = {bytes(name): bytes(value) for name, value in event.headers}
                self.status = int(fields[b":status"])
                self.content_length = int(fields[b"content-length"])
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.unread += event.flow_controlled_length
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
        self.sock.sendall(self.connection.data_to_send())

    def finish(self) -> None:
        """Read the rest of the answer, granting the server more window as it goes."""
        with self.sock:
            while not self.ended:
                self.connection.acknowledge_received_data(self.unread, 1)
                self.unread = 0
                self.sock.sendall(self.connection.data_to_send())
                self.receive()


async def test_stop_finishes_the_request_in_flight_and_exits_cleanly(
    start: Start, volume: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mount = f"{require_real_zip()}:/srv/ml-latest-small.zip:ro"
    container = await start(volume, "/srv/ml-latest-small.zip", "--volume", mount)
    await container.wait_ready()

    read = await asyncio.to_thread(SlowRead.start, container.port)
    assert read.status == 200 and 0 < len(read.body) <= WINDOW < read.content_length
    stopping = time.perf_counter()
    stop = asyncio.create_task(podman("stop", "--time", "10", container.name, timeout=30))
    # Nothing more is read until well after SIGTERM: the server must wait for this client.
    await asyncio.sleep(READ_AFTER)
    assert not stop.done(), "the container stopped with an answer half sent"
    await asyncio.to_thread(read.finish)
    await stop
    stopped = time.perf_counter() - stopping
    report(capsys, f"podman stop with a request in flight: {stopped:.2f}s")

    assert read.ended and len(read.body) == read.content_length > 50_000
    assert b"</html>" in read.body
    assert READ_AFTER <= stopped < 10
    assert await container.inspect("{{.State.ExitCode}}") == "0"
    logs = await container.logs()
    assert "SIGTERM received" in logs and "Traceback" not in logs


async def test_image_size(image: str, capsys: pytest.CaptureFixture[str]) -> None:
    size = int((await podman("image", "inspect", "--format", "{{.Size}}", image)).out)
    report(capsys, f"{image}: {size / 1e6:.0f} MB; the largest parts:")
    script = (
        "du -sm /usr; du -sm /opt/venv;"
        "du -sm /opt/venv/lib/python3*/site-packages/* | sort -rn | head -n 8;"
        "find /opt/venv -name __pycache__ -prune -print0 | du -smc --files0-from=- | tail -n 1"
        " | sed 's/total/of which __pycache__/'"
    )
    usage = await podman("run", "--rm", "--network=none", "--entrypoint=sh", image, "-c", script)
    for line in usage.out.splitlines():
        report(capsys, f"  {line}")
    base = await podman("image", "inspect", "--format", "{{.Size}}", BASE_IMAGE, check=False)
    if base.code == 0:
        added = (size - int(base.out)) / 1e6
        report(capsys, f"added to the base image: {added:.0f} MB")
        assert added < LAYERS_BUDGET_MB
