"""Connections held only while used, load shed with 503, streams that notice a revoked token,
and what /readyz and /metrics say about workers, queued attempts and the pool."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator.config import OrchestratorSettings
from orchestrator.db import PoolConfig
from orchestrator.models import ApiToken, utcnow
from orchestrator.queue import JOBS_KEY
from orchestrator.reporting import Reporters
from orchestrator.services import Services
from orchestrator.tokens import create_token, revoke_token
from tests.live import LiveApi, serve
from tests.waiting import wait_until
from tests.web.test_events_api import parse_sse
from tests.workers import WorkerPool

QUICK = {"sse_keepalive_s": 0.2, "token_recheck_s": 0.2, "health_interval_s": 0.2}


class Follower(threading.Thread):
    """Follows a task's event stream in the background and keeps every frame."""

    def __init__(self, live: LiveApi, task_id: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{live.url}/api/tasks/{task_id}/events"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.text = ""
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=60) as stream:
            for chunk in stream.iter_text():
                self.text += chunk
        self.done.set()

    def kinds(self) -> list[str]:
        return [f["event"] for f in parse_sse(self.text)]


@pytest.fixture
def one_connection(settings: OrchestratorSettings) -> Iterator[Services]:
    """Services whose pool has a single connection: two at once in a request would hang."""
    services = Services(settings, reporters=Reporters(), pool=PoolConfig(size=1, overflow=0))
    services.migrate()
    yield services
    services.close()


def test_one_connection_serves_requests_while_a_stream_is_open(one_connection: Services) -> None:
    with one_connection.sessions.begin() as session:
        token = create_token(session, name="admin", is_admin=True, now=utcnow())
    live = serve(one_connection, token, **QUICK)
    try:
        api = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"})
        followed = api.post("/api/tasks", json={"repo": "r", "instruction": "a"}).json()
        follower = Follower(live, followed["id"], token)
        follower.start()
        wait_until(lambda: "task.created" in follower.kinds(), what="the stream's backlog")
        other = api.post("/api/tasks", json={"repo": "r", "instruction": "b"})
        assert other.status_code == 201
        assert api.get(f"/api/tasks/{other.json()['id']}").json()["state"] == "queued"
        assert len(api.get("/api/tasks").json()["items"]) == 2
        assert api.post(f"/api/tasks/{other.json()['id']}/cancel").status_code == 200
        assert api.get("/metrics").status_code == 200
        assert not follower.done.is_set()
        assert api.post(f"/api/tasks/{followed['id']}/cancel").status_code == 200
        assert follower.done.wait(15)
        assert follower.kinds() == ["task.created", "task.finished"]
        api.close()
    finally:
        live.stop()


def test_a_stream_ends_soon_after_its_token_is_revoked(services: Services) -> None:
    with services.sessions.begin() as session:
        admin = create_token(session, name="admin", is_admin=True, now=utcnow())
        viewer = create_token(session, name="viewer", is_admin=False, now=utcnow())
    live = serve(services, admin, **QUICK)
    try:
        headers = {"Authorization": f"Bearer {viewer}"}
        task = httpx.post(
            f"{live.url}/api/tasks",
            json={"repo": "https://git.example/r.git", "instruction": "i"},
            headers=headers,
        ).json()
        follower = Follower(live, task["id"], viewer)
        follower.start()
        wait_until(lambda: "task.created" in follower.kinds(), what="the stream's backlog")
        with services.sessions.begin() as session:
            revoke_token(session, name="viewer", now=utcnow())
        assert follower.done.wait(15)
        assert follower.kinds() == ["task.created"]
        assert follower.text.endswith(": stream closed: the token was revoked\n\n")
        again = httpx.get(f"{live.url}/api/tasks/{task['id']}", headers=headers)
        assert again.status_code == 401
    finally:
        live.stop()


def _last_used(services: Services, name: str) -> object:
    with services.sessions() as session:
        return session.query(ApiToken).filter_by(name=name).one().last_used_at


def test_a_token_s_last_use_is_recorded_at_most_once_a_minute(
    api: TestClient, services: Services
) -> None:
    assert _last_used(services, "admin") is None
    api.get("/api/tasks")
    first = _last_used(services, "admin")
    assert first is not None
    api.get("/api/tasks")
    api.post("/api/tasks", json={"repo": "r", "instruction": "i"})
    assert _last_used(services, "admin") == first
    with services.sessions.begin() as session:
        token = session.query(ApiToken).filter_by(name="admin").one()
        token.last_used_at = utcnow() - timedelta(minutes=2)
    api.get("/api/tasks")
    later = _last_used(services, "admin")
    assert isinstance(later, type(first)) and later > first  # type: ignore[operator]


def _status(client: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return client.get(path, timeout=0.5)
    except httpx.TimeoutException:
        return None  # admitted and queued: it completes once the threads are free


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_saturated_api_sheds_requests_with_503_at_once(
    services: Services, admin_token: str
) -> None:
    live = serve(services, admin_token, api_threads=1, max_waiting=1, **QUICK)
    headers = {"Authorization": f"Bearer {admin_token}"}
    client = httpx.Client(base_url=live.url, headers=headers)
    try:
        assert client.get("/api/tasks").status_code == 200  # the token's use is recorded now
        results: list[httpx.Response] = []
        # SQLite's writers queue on this lock: holding it parks a submission on the only thread.
        with services.lifecycle.gate:
            submits = [
                threading.Thread(
                    target=lambda: results.append(
                        httpx.post(
                            f"{live.url}/api/tasks",
                            json={"repo": "r", "instruction": "i"},
                            headers=headers,
                            timeout=30,
                        )
                    )
                )
                for _ in range(2)
            ]
            for thread in submits:
                thread.start()
            shed = wait_until(
                lambda: (
                    (r := _status(client, "/api/tasks")) is not None and r.status_code == 503 and r
                ),
                timeout=15,
                what="a request to be shed",
            )
            assert shed.headers["Retry-After"] == "2"
            assert shed.json()["part"] == "api"
            assert shed.json()["detail"].startswith("the API is overloaded: ")
            assert client.get("/livez", timeout=2).status_code == 200
            assert client.get("/readyz", timeout=2).status_code in (200, 503)
        for thread in submits:
            thread.join(30)
        # The first held the thread; the second waited, unless a probe took the one place.
        codes = [r.status_code for r in results]
        assert 201 in codes and set(codes) <= {201, 503}
        assert all(r.headers["Retry-After"] == "2" for r in results if r.status_code == 503)
        page = wait_until(
            lambda: (r := client.get("/api/tasks")).status_code == 200 and r,
            what="the API to recover",
        )
        assert len(page.json()["items"]) == codes.count(201)
    finally:
        client.close()
        live.stop()


def test_readyz_names_missing_workers_until_one_answers(
    services: Services, admin_token: str, workers: WorkerPool
) -> None:
    live = serve(services, admin_token, **QUICK)
    try:
        ready = wait_until(
            lambda: "workers" in (r := httpx.get(f"{live.url}/readyz")).json()["checks"] and r,
            what="the first refresh",
        )
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["workers"]
        assert ready.json()["checks"]["workers"] == "no worker answered a ping within 1 s"
        workers.start()
        ready = wait_until(
            lambda: (r := httpx.get(f"{live.url}/readyz")).status_code == 200 and r,
            timeout=60,
            what="/readyz to see the worker",
        )
        assert ready.json()["workers_alive"] == 1
        assert ready.json()["checks"] == {
            "database": "ok",
            "redis": "ok",
            "workers": "ok",
            "disk": "ok",
            "storage": "ok",
            "writes": "ok",
        }
        lines = httpx.get(f"{live.url}/metrics").text.splitlines()
        assert "autan_workers_alive 1.0" in lines
    finally:
        live.stop()


def test_metrics_show_the_oldest_queued_attempt_and_the_stranded_ones(
    api: TestClient, services: Services
) -> None:
    def gauges() -> dict[str, float]:
        lines = api.get("/metrics").text.splitlines()
        return {
            name: float(value)
            for name, _, value in (line.partition(" ") for line in lines)
            if name.startswith("autan_") and "{" not in name
        }

    assert gauges()["autan_oldest_queued_attempt_age_seconds"] == 0.0
    assert gauges()["autan_stranded_attempts"] == 0.0
    task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
    grace = services.settings.requeue_grace_s
    wait_until(
        lambda: gauges()["autan_oldest_queued_attempt_age_seconds"] > grace,
        what="the attempt to wait past the grace",
    )
    assert gauges()["autan_stranded_attempts"] == 0.0  # its job is in the queue
    services.redis.hdel(JOBS_KEY, task["attempts"][0]["id"])
    now = gauges()
    assert now["autan_stranded_attempts"] == 1.0
    assert now["autan_db_pool_in_use"] >= 0.0
    assert now["autan_disk_free_bytes"] > 0 or now["autan_disk_free_bytes"] == -1.0
