"""Outages as a client sees them: 503 naming the part with Retry-After, 507 for a full disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from orchestrator.reconcile import reconcile
from orchestrator.services import Services
from tests.live import serve
from tests.services import POSTGRES_URL, RedisServer
from tests.waiting import wait_until
from tests.web.test_connections import QUICK, Follower
from web.app import create_app
from web.config import WebSettings
from web.errors import Outage
from web.readiness import WRITE_FAILURE_HOLDS_S, Readiness

FAST_HEALTH = {"health_interval_s": 0.1}


def _unavailable(r: Any, part: str, status: int = 503) -> None:
    assert r.status_code == status, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["part"] == part
    verb = "is out of space" if status == 507 else "is unavailable"
    assert r.json()["detail"].startswith(f"{part} {verb}: ")


@contextmanager
def _client(services: Services, token: str, **settings: Any) -> Iterator[TestClient]:
    app = create_app(services, WebSettings(**settings))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@contextmanager
def _postgres_refusing(url: str) -> Iterator[None]:
    """The database refuses every connection and drops the open ones: an outage."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_outage_answers_503_naming_it_on_every_route(
    services: Services, admin_token: str
) -> None:
    with _client(services, admin_token, **FAST_HEALTH) as api:
        task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
        with _postgres_refusing(services.settings.resolved_database_url):
            _unavailable(api.post("/api/tasks", json={"repo": "r", "instruction": "i"}), "database")
            _unavailable(api.get("/api/tasks"), "database")
            _unavailable(api.get(f"/api/tasks/{task['id']}"), "database")
            _unavailable(api.post(f"/api/tasks/{task['id']}/cancel"), "database")
            _unavailable(api.get(f"/api/tasks/{task['id']}/events?follow=false"), "database")
            _unavailable(api.get("/api/workspaces"), "database")
            _unavailable(api.get("/metrics"), "database")
            assert api.get("/livez").json() == {"status": "ok"}
            ready = wait_until(
                lambda: (
                    (r := api.get("/readyz")).status_code == 503
                    and "database" in r.json()["failing"]
                    and r
                ),
                what="/readyz to name the database",
            )
            assert ready.json()["checks"]["database"].startswith("unreachable")
        # Back: the pool reconnects and nothing was half-written.
        assert api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).status_code == 201
        assert len(api.get("/api/tasks").json()["items"]) == 2
        assert api.get("/metrics").status_code == 200


def test_without_redis_submissions_and_cancels_are_kept_and_sent_later(
    services: Services, admin_token: str, redis_server: RedisServer
) -> None:
    with _client(services, admin_token) as api:
        redis_server.stop()
        try:
            created = api.post("/api/tasks", json={"repo": "r", "instruction": "i"})
            assert created.status_code == 201
            assert created.json()["state"] == "queued"
            cancelled = api.post(f"/api/tasks/{created.json()['id']}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["state"] == "cancelled"
            stored = api.get(f"/api/tasks/{created.json()['id']}/events?follow=false")
            assert stored.status_code == 200
            assert "event: task.finished" in stored.text
            metrics = api.get("/metrics")
            assert metrics.status_code == 200
            assert f'autan_queue_depth{{queue="{services.settings.queue_name}"}} -1.0' in (
                metrics.text.splitlines()
            )
            # The dashboard keeps its sign-in sessions in Redis.
            api.cookies.set("autan_session", "s")
            _unavailable(api.get("/tasks"), "redis")
        finally:
            redis_server.start()
        # The report of the cancel could not be queued then: the reconciler queues it later.
        assert services.redis.llen(services.queue.report_queue) == 0
        wait_until(
            lambda: reconcile(services.lifecycle).reports == 1,
            timeout=15,
            what="the reconciler to queue the report",
        )
        assert services.redis.llen(services.queue.report_queue) == 1


@contextmanager
def _sqlite_full(services: Services) -> Iterator[None]:
    """The database file may not grow by one page: SQLite's own 'database or disk is full'."""
    with services.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    def cap(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(services.engine, "connect", cap)
    services.engine.dispose()
    try:
        yield
    finally:
        event.remove(services.engine, "connect", cap)
        services.engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_database_disk_answers_507_and_readyz_names_the_writes(
    services: Services, admin_token: str
) -> None:
    with _client(services, admin_token, **FAST_HEALTH) as api:
        assert api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).status_code == 201
        with _sqlite_full(services):
            big = {"repo": "r", "instruction": "x" * 90_000}
            r = api.post("/api/tasks", json=big)
            _unavailable(r, "database", 507)
            assert "full" in r.json()["detail"]
            failing = api.get("/readyz")
            assert failing.status_code == 503
            assert "writes" in failing.json()["failing"]
            assert failing.json()["checks"]["writes"].startswith("the last write failed: database")
            assert len(api.get("/api/tasks").json()["items"]) == 1  # reads still work
        assert api.post("/api/tasks", json=big).status_code == 201
        assert api.get("/readyz").json()["checks"]["writes"] == "ok"


def test_low_disk_fails_readyz_and_refuses_new_work_with_507(
    services: Services, admin_token: str
) -> None:
    with _client(services, admin_token, min_free_disk_mb=10**9, **FAST_HEALTH) as api:
        ready = wait_until(
            lambda: "disk" in (r := api.get("/readyz")).json()["checks"] and r,
            what="the first refresh",
        )
        assert ready.status_code == 503
        assert "disk" in ready.json()["failing"]
        assert "below the 1000000000 MiB minimum" in ready.json()["checks"]["disk"]
        r = api.post("/api/tasks", json={"repo": "r", "instruction": "i"})
        assert r.status_code == 507
        assert r.headers["Retry-After"] == "2"
        assert r.json()["detail"].startswith("not enough disk to take new work: ")
        blob = api.put("/api/blobs/" + "0" * 64, content=b"x")
        assert blob.status_code == 507
        assert api.get("/api/tasks").json()["items"] == []
        metrics = api.get("/metrics").text.splitlines()
        free = next(line for line in metrics if line.startswith("autan_disk_free_bytes "))
        assert float(free.split()[1]) > 0  # refreshed since: the same order, not the same bytes


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_stream_whose_database_goes_away_ends_saying_so(
    services: Services, admin_token: str
) -> None:
    live = serve(services, admin_token, **QUICK)
    try:
        headers = {"Authorization": f"Bearer {admin_token}"}
        task = httpx.post(
            f"{live.url}/api/tasks", json={"repo": "r", "instruction": "i"}, headers=headers
        ).json()
        follower = Follower(live, task["id"], admin_token)
        follower.start()
        wait_until(lambda: "task.created" in follower.kinds(), what="the stream's backlog")
        with _postgres_refusing(services.settings.resolved_database_url):
            assert follower.done.wait(15)
            assert follower.kinds() == ["task.created"]
            assert ": stream closed: database is unavailable: " in follower.text
            again = httpx.get(f"{live.url}/api/tasks/{task['id']}/events", headers=headers)
            _unavailable(again, "database")
    finally:
        live.stop()


def test_a_failed_read_is_no_failed_write_and_a_failed_write_does_not_hold_forever() -> None:
    readiness = Readiness(min_free_bytes=0)
    readiness.checks = {}
    down = Outage("database", "unreachable")
    readiness.noted(down, writing=False)
    assert readiness.failing() == {}
    readiness.noted(down, writing=True)
    assert readiness.failing() == {"writes": "the last write failed: database: unreachable"}
    readiness.wrote()
    assert readiness.failing() == {}
    readiness.noted(down, writing=True)
    readiness.last_write_failed -= WRITE_FAILURE_HOLDS_S  # as if a minute passed, no write
    assert readiness.failing() == {}
