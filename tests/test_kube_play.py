"""The Kubernetes manifests run for real with `podman kube play`: the build Job's pod writes the
snapshot into the volume, a replica of the Deployment maps it read-only and answers, and a
second run of the Job is picked up by the replica without a restart.

The objects are rendered from deploy/kubernetes/base by kustomize (scripts/kustomize) and
changed only where this machine needs it: their own names, the dataset served from the host's
loopback, loopback ports, host networking (so no port mappings: Podman refuses them there),
and the DATABASE_URL the replicas read from a Secret given as its value: a new database on
the test's PostgreSQL (tests/postgres.py), on 127.0.0.1 as well.
Podman plays Pods, Deployments, PersistentVolumeClaims and ConfigMaps, so the Job runs as the Pod
its template describes. `make container-test` runs this after building the image.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import IN_CI, DatasetServer, require_real_zip
from tests.live import free_port
from tests.postgres import Postgres
from tests.test_container import IMAGE, UID, podman, podman_sync, report

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZATION = "deploy/kubernetes/base"
BUILD_SECONDS = 240
"""Longest a build pod may take: every algorithm on ml-latest-small, about 25 s busy."""

Object = dict[str, Any]


@pytest.fixture(scope="module")
def manifests() -> list[Object]:
    """The base kustomization rendered as the cluster would get it."""
    if podman_sync("image", "exists", IMAGE).returncode != 0:
        problem = f"no image {IMAGE}; build it with `make container-image`"
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    done = subprocess.run(
        [str(ROOT / "scripts" / "kustomize"), KUSTOMIZATION],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        problem = f"cannot render {KUSTOMIZATION}: {done.stderr.strip()}"
        if IN_CI or "kustomize" not in problem:
            pytest.fail(problem)
        pytest.skip(problem)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def only(objects: list[Object], kind: str) -> Object:
    """A copy of the single object of `kind`."""
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return copy.deepcopy(found)


@dataclass
class Played:
    """The objects adapted to this machine, and what playing them created."""

    prefix: str
    port: int
    metrics_port: int
    settings: Object
    claim: Object
    job_pod: Object
    wait_pod: Object
    deployment: Object
    folder: Path

    @property
    def server(self) -> str:
        """The replica's container, as Podman names a Deployment's first pod."""
        return f"{self.deployment['metadata']['name']}-pod-0-server"

    def url(self, path: str, port: int | None = None) -> str:
        """Absolute URL of `path` on the replica (on its public port unless told)."""
        return f"http://127.0.0.1:{port or self.port}{path}"

    def build_pod(self, run: str) -> Object:
        """The build Job's pod template as a Pod named for this run."""
        pod = copy.deepcopy(self.job_pod)
        pod["metadata"]["name"] = f"{self.prefix}-{run}"
        return pod

    async def play(self, name: str, *objects: Object) -> None:
        """`podman kube play` these objects on the host's network."""
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        await podman("kube", "play", "--network", "host", str(path), timeout=180)

    async def post_until_created(self, path: str, timeout: float) -> Any:
        """POST {} to `path` until it answers 201; the decoded JSON."""
        created: list[Any] = []

        async def done() -> bool:
            timeout = aiohttp.ClientTimeout(total=10)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url(path), json={}) as response,
            ):
                if response.status == 201:
                    created.append(await response.json())
                else:
                    last[:] = [response.status, await response.text()]
                return bool(created)

        last: list[Any] = []
        try:
            await poll(done, timeout, f"POST {path} never answered 201")
        except AssertionError as exc:
            logs = await podman("logs", self.server, check=False)
            raise AssertionError(
                f"{exc}; last {last}:\n{logs.out[-1500:]}{logs.err[-1500:]}"
            ) from None
        return created[0]

    async def get(self, path: str, port: int | None = None) -> tuple[int, Any]:
        """GET `path` on the replica: the status and the decoded JSON (else the text)."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url(path, port)) as response,
        ):
            body = await response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, body.decode()


def adapt(
    objects: list[Object],
    source: str,
    database_url: str,
    ports: tuple[int, int],
    folder: Path,
) -> Played:
    """The rendered objects with what this machine needs changed, and nothing else."""
    port, metrics_port = ports
    prefix = f"movierec-kube-{uuid.uuid4().hex[:8]}"
    settings = only(objects, "ConfigMap")
    settings["data"].update(
        MOVIELENS_SOURCE=source, HOST="127.0.0.1", PORT=str(port), METRICS_PORT=str(metrics_port)
    )
    claim = only(objects, "PersistentVolumeClaim")
    claim_name = claim["metadata"]["name"]
    claim["metadata"]["name"] = f"{prefix}-data"

    def own_volumes(pod_spec: Object) -> None:
        # Podman makes a named volume of each emptyDir: a private name per test run.
        renamed = {}
        for volume in pod_spec["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] == claim_name
                volume["persistentVolumeClaim"]["claimName"] = f"{prefix}-data"
            renamed[volume["name"]] = f"{prefix}-{volume['name']}"
            volume["name"] = renamed[volume["name"]]
        for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
            for mount in container.get("volumeMounts", []):
                mount["name"] = renamed[mount["name"]]

    job = only(objects, "Job")
    job_pod = {"apiVersion": "v1", "kind": "Pod", **job["spec"]["template"]}
    own_volumes(job_pod["spec"])
    deployment = only(objects, "Deployment")
    deployment["metadata"]["name"] = f"{prefix}-server"
    deployment["spec"]["replicas"] = 1  # one per port on a shared host network
    pod_spec = deployment["spec"]["template"]["spec"]
    own_volumes(pod_spec)
    # Podman 4.3 here does not wait for init containers (they start beside the server, and a
    # finished one is removed while still running, which fails the play): the snapshot wait
    # runs as a pod of its own, exactly as specified, before the build.
    (wait,) = pod_spec.pop("initContainers")
    mounted = {mount["name"] for mount in wait["volumeMounts"]}
    wait_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{prefix}-wait"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_spec["securityContext"],
            "containers": [wait],
            "volumes": [v for v in pod_spec["volumes"] if v["name"] in mounted],
        },
    }
    # The image under test (MOVIEREC_IMAGE), where kustomize names the default tag.
    for spec in (job_pod["spec"], wait_pod["spec"], pod_spec):
        for container in spec["containers"]:
            container["image"] = IMAGE
    for container in pod_spec["containers"]:
        container.pop("ports", None)
        # The Secret the cluster would hold (Podman resolves none): its value, given here.
        for variable in container.get("env", []):
            if variable["name"] == "DATABASE_URL":
                assert variable["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
                variable.pop("valueFrom")
                variable["value"] = database_url
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            container[probe]["httpGet"]["port"] = port
    return Played(
        prefix, port, metrics_port, settings, claim, job_pod, wait_pod, deployment, folder
    )


@pytest.fixture
async def played(
    manifests: list[Object], dataset_server: DatasetServer, postgres: Postgres, tmp_path: Path
) -> AsyncIterator[Played]:
    """The manifests adapted to this machine; every pod and volume they made is removed after."""
    source = dataset_server.serve_bytes("/ml-latest-small.zip", require_real_zip().read_bytes())
    database = postgres.new_database()
    cluster = adapt(manifests, source, database, (free_port(), free_port()), tmp_path)
    yield cluster
    pods = await podman("pod", "ps", "--format", "{{.Name}}", check=False)
    for pod in pods.out.split():
        if pod.startswith(cluster.prefix):
            await podman("pod", "rm", "--force", "--time", "0", pod, check=False)
    volumes = await podman("volume", "ls", "--format", "{{.Name}}", check=False)
    for volume in volumes.out.split():
        if volume.startswith(cluster.prefix):
            await podman("volume", "rm", "--force", volume, check=False)


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail if the test left a pod or volume of its own behind."""
    yield
    for what in ("pod", "volume"):
        names = podman_sync(what, "ls" if what == "volume" else "ps", "--format", "{{.Name}}")
        assert not [n for n in names.stdout.split() if n.startswith("movierec-kube-")], what


async def run_build(cluster: Played, run: str) -> tuple[str, float]:
    """Play the build Job's pod until it exits 0; the snapshot id it printed and its seconds."""
    started = time.perf_counter()
    pod = cluster.build_pod(run)
    await cluster.play(run, cluster.settings, pod)
    container = f"{pod['metadata']['name']}-build"
    code = (await podman("wait", container, timeout=BUILD_SECONDS)).out
    logs = (await podman("logs", container)).out
    assert code == "0", f"the build pod exited {code}:\n{logs}"
    built = re.search(r"snapshot (\w+) of ml-latest-small", logs)
    assert built, logs
    return built.group(1), time.perf_counter() - started


async def poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Await `check()` until it is true; seconds it took. Fails with `what` after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await check():
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


async def wait_until(
    cluster: Played, what: str, ready: Any, timeout: float = 60
) -> tuple[float, Any]:
    """Poll GET `what` until `ready(status, body)`; the seconds it took and the last body."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            status, body = await cluster.get(what)
        except aiohttp.ClientError:
            status, body = 0, None
        if ready(status, body):
            return time.perf_counter() - started, body
        await asyncio.sleep(0.2)
    logs = await podman("logs", cluster.server, check=False)
    raise AssertionError(f"{what} not as expected after {timeout}s:\n{logs.out}\n{logs.err}")


async def test_the_build_job_fills_the_volume_and_a_read_only_replica_serves_it(
    no_leftovers: None, played: Played, capsys: pytest.CaptureFixture[str]
) -> None:
    # The replicas' init container waits while the volume holds no snapshot...
    await played.play("volume", played.settings, played.claim, played.wait_pod)
    waiter = f"{played.wait_pod['metadata']['name']}-wait-for-snapshot"
    waiting = "waiting for the build Job's snapshot of ml-latest-small in /app/data/snapshots"

    async def has_looked() -> bool:
        return waiting in (await podman("logs", waiter, check=False)).out

    await poll(has_looked, 60, "the snapshot wait never looked for a snapshot")
    assert (await podman("inspect", "--format", "{{.State.Status}}", waiter)).out == "running"
    first, built = await run_build(played, "build")
    report(capsys, f"kube play: build Job pod wrote snapshot {first} in {built:.1f}s")
    # ...and lets the server start once the build Job has written one.
    assert (await podman("wait", waiter, timeout=30)).out == "0"

    started = time.perf_counter()
    await played.play("serve", played.settings, played.deployment)
    ready_in, _ = await wait_until(played, "/readyz", lambda status, _: status == 200)
    # Each new connection may reach either of the replica's two workers: both must be ready.
    for _ in range(10):
        ready_in += (await wait_until(played, "/readyz", lambda status, _: status == 200))[0]
    report(capsys, f"kube play: replica ready {time.perf_counter() - started:.1f}s after play")
    assert ready_in < 30

    # Every algorithm came from the Job's snapshot: none is still being fitted here.
    for _ in range(10):
        status, algorithms = await played.get("/api/algorithms")
        assert status == 200
        assert {a["availability"] for a in algorithms["algorithms"]} == {"ready"}
    status, state = await played.get("/api/status")
    assert (status, state["snapshot_id"]) == (200, first)
    status, answer = await played.get("/api/users/42/recommendations?n=5")
    assert status == 200 and len(answer["recommendations"]) == 5
    # Nights go to the database DATABASE_URL names (its first start may still be retrying).
    night = await played.post_until_created("/api/nights", 60)
    status, found = await played.get(f"/api/nights/{night['id']}")
    assert status == 200 and found["members"] == []

    # The security context held: uid 10001, nothing writable but /tmp, the volume read-only.
    probe = 'id -u; for d in /app/data /app /tmp; do touch "$d/.w" 2>/dev/null && echo "$d"; done'
    seen = (await podman("exec", played.server, "sh", "-c", probe)).out.split()
    assert seen == [str(UID), "/tmp"]
    # The workers' metric files live in the /tmp emptyDir; the metrics port answers.
    status, metrics = await played.get("/metrics", played.metrics_port)
    assert status == 200 and f'snapshot_id="{first}"' in metrics
    started_at = await podman("inspect", "--format", "{{.State.StartedAt}}", played.server)

    # A second run of the Job publishes a newer snapshot: the replica switches to it by itself.
    second, built = await run_build(played, "rebuild")
    assert second != first
    switched, _ = await wait_until(
        played, "/api/status", lambda status, body: body and body.get("snapshot_id") == second, 15
    )
    report(
        capsys,
        f"kube play: the replica served the rebuilt snapshot {switched:.1f}s after its Job ended",
    )
    status, answer = await played.get("/api/users/42/recommendations?n=5")
    assert status == 200 and len(answer["recommendations"]) == 5
    still = await podman("inspect", "--format", "{{.State.StartedAt}}", played.server)
    assert still.out == started_at.out, "the replica restarted instead of switching"
