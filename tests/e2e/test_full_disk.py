"""A small data disk filled under a real API and worker: new work is refused with the reason,
/readyz names the disk, Redis saving there refuses writes without stopping the worker, and once
space is freed a new task runs to its end.

The data directory (SQLite store and Redis's dir included, as `autan up` lays them out) is a
tmpfs of a few MiB mounted for the test (the tests run as root) and unmounted afterwards.
"""

from __future__ import annotations

import errno
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.states import TaskState
from orchestrator.tokens import create_token
from tests.conftest import TEST_RUNNER
from tests.e2e.test_chaos import _pings, _refuses
from tests.live import LiveApi, serve
from tests.orchestrator.test_workers import ended
from tests.waiting import wait_until
from tests.workers import WorkerPool

pytestmark = pytest.mark.slow

DISK_MB = 8
MIN_FREE_MB = 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(data)], check=True
    )
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=True)


@pytest.fixture
def disk_redis(small_disk: Path) -> Iterator[redis.Redis]:
    """A redis-server saving its snapshots on the small disk, as one under `autan up` does."""
    store = small_disk / "redis"
    store.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(store / "r.sock"),
         "--unixsocketperm", "700", "--save", "3600 1", "--appendonly", "no", "--dir", str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(unix_socket_path=str(store / "r.sock"))
    try:
        wait_until(lambda: _pings(client), timeout=10, what="redis-server")
        yield client
    finally:
        client.close()
        server.kill()
        server.wait()


@pytest.fixture
def platform(
    small_disk: Path, disk_redis: redis.Redis, tmp_path: Path
) -> Iterator[tuple[Services, WorkerPool, LiveApi]]:
    redis_url = f"unix://{disk_redis.connection_pool.connection_kwargs['path']}"
    settings = OrchestratorSettings(
        data_dir=small_disk,
        database_url=f"sqlite:///{small_disk / 'autan.db'}",
        redis_url=redis_url,
        runner=TEST_RUNNER,
        heartbeat_interval_s=0.3,
        heartbeat_timeout_s=6.0,
        reconcile_interval_s=0.3,
        requeue_grace_s=0.5,
        attempt_time_limit_s=60,
        queue_name=f"autan.disk.{uuid.uuid4().hex[:8]}",
    )
    services = Services(settings, reporters=Reporters())
    services.migrate()
    with services.sessions.begin() as session:
        token = create_token(session, name="admin", is_admin=True, now=utcnow())
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    workers = WorkerPool(settings, logs)
    workers.start()
    api = serve(services, token, min_free_disk_mb=MIN_FREE_MB, health_interval_s=0.2)
    try:
        yield services, workers, api
    finally:
        api.stop()
        workers.stop_all()
        services.close()


def _fill(directory: Path) -> Path:
    """Write zeros until the file system says it is full."""
    filler = directory / "filler"
    chunk = b"\0" * (64 << 10)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _task(instruction: dict[str, object]) -> dict[str, str]:
    return {"repo": "/srv/repo.git", "instruction": json.dumps(instruction)}


def _ready(client: httpx.Client, failing: bool) -> httpx.Response | None:
    r = client.get("/readyz")
    return r if ("disk" in r.json().get("failing", [])) == failing else None


def test_a_filled_data_disk_refuses_new_work_then_recovers_when_space_is_freed(
    platform: tuple[Services, WorkerPool, LiveApi], small_disk: Path, disk_redis: redis.Redis
) -> None:
    services, workers, api = platform
    headers = {"Authorization": f"Bearer {api.token}"}
    wait_until(lambda: "ready" in workers.output(), timeout=60, what="the worker to be ready")
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
        filler = _fill(small_disk)
        disk_redis.bgsave()  # fails for lack of space: Redis refuses writes (MISCONF)
        wait_until(lambda: _refuses(disk_redis), timeout=30, what="Redis to refuse writes")
        ready = wait_until(lambda: _ready(client, failing=True), what="/readyz to name the disk")
        assert ready.status_code == 503
        assert "MiB free in the data directory" in ready.json()["checks"]["disk"]
        for _ in range(3):
            r = client.post("/api/tasks", json=_task({"steps": 1}))
            assert r.status_code in (503, 507), r.text
            assert r.headers["Retry-After"]
            assert "disk" in r.json()["detail"] or "space" in r.json()["detail"], r.text
        assert client.get("/api/tasks").json()["items"] == []

        # The worker's consumer waits, saying why, instead of stopping.
        wait_until(lambda: "MISCONF" in workers.output(), timeout=60, what="the worker to wait")
        assert all(process.poll() is None for process in workers.processes), workers.output()

        filler.unlink()
        disk_redis.bgsave()
        wait_until(lambda: not _refuses(disk_redis), timeout=30, what="Redis to take writes")
        wait_until(lambda: _ready(client, failing=False), what="/readyz to clear the disk")
        r = client.post("/api/tasks", json=_task({"steps": 2}))
        assert r.status_code == 201, r.text
        done = ended(services, r.json()["id"])
    assert done.state == TaskState.SUCCEEDED, workers.output()
    assert all(process.poll() is None for process in workers.processes), workers.output()
    assert "Unrecoverable error" not in workers.output()
