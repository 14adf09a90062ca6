"""Health and metrics, as a load balancer and Prometheus see them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orchestrator.base import AttemptOutcome
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.services import RedisServer


def test_metrics_count_tasks_by_state_and_the_queue(api: TestClient, services: Services) -> None:
    for _ in range(3):
        api.post("/api/tasks", json={"repo": "r", "instruction": "i"})
    first = api.get("/api/tasks").json()["items"][0]
    api.post(f"/api/tasks/{first['id']}/cancel")
    r = api.get("/metrics")
    assert r.status_code == 200
    lines = set(r.text.splitlines())
    assert 'autan_tasks{state="queued"} 2.0' in lines
    assert 'autan_tasks{state="cancelled"} 1.0' in lines
    assert 'autan_tasks{state="succeeded"} 0.0' in lines
    assert f'autan_queue_depth{{queue="{services.settings.queue_name}"}} 3.0' in lines
    assert 'autan_attempt_duration_seconds_bucket{le="+Inf"} 0.0' in lines
    assert "autan_attempt_duration_seconds_count 0.0" in lines


def test_metrics_count_an_unverified_task_apart_from_succeeded_ones(
    api: TestClient, services: Services
) -> None:
    task_id = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()["id"]
    attempt = services.lifecycle.get(task_id).attempts[0]
    claim = services.lifecycle.claims.claim(attempt.id, worker="w1")
    assert claim is not None
    outcome = AttemptOutcome(diff="+x\n", verified=False, tests_outcome="no tests found")
    services.lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)
    task = api.get(f"/api/tasks/{task_id}").json()
    assert task["state"] == "unverified"
    assert task["reason"] == "no tests found: nothing could verify the change; kept attempt 1 of 1"
    assert task["attempts"][0]["verdict"] == "unverified"
    lines = set(api.get("/metrics").text.splitlines())
    assert 'autan_tasks{state="unverified"} 1.0' in lines
    assert 'autan_tasks{state="succeeded"} 0.0' in lines


def test_healthz_names_what_is_down(api: TestClient, redis_server: RedisServer) -> None:
    assert api.get("/healthz").json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
    }
    redis_server.stop()
    r = api.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["redis"].startswith("error")
    redis_server.start()
