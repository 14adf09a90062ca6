"""The tasks API: what it answers to good and bad requests, and what it stores."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.models import Attempt, Task
from orchestrator.services import Services
from web.app import create_app
from web.config import WebSettings


def count_rows(services: Services) -> tuple[int, int]:
    with services.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Task)) or 0,
            s.scalar(select(func.count()).select_from(Attempt)) or 0,
        )


def test_submit_answers_201_with_the_task(api: TestClient, services: Services) -> None:
    r = api.post(
        "/api/tasks",
        json={
            "repo": "https://git.example/x.git",
            "instruction": "fix",
            "ref": "main",
            "attempts": 2,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "queued"
    assert body["repo"] == "https://git.example/x.git"
    assert body["ref"] == "main"
    assert body["attempts_requested"] == 2
    assert [a["number"] for a in body["attempts"]] == [1, 2]
    assert body["origin"]["kind"] == "api"
    assert body["result"] is None
    assert count_rows(services) == (1, 2)
    assert services.queue.depth() == 2
    assert api.get(f"/api/tasks/{body['id']}").json() == body


def test_same_idempotency_key_answers_the_same_task(api: TestClient, services: Services) -> None:
    payload = {"repo": "r", "instruction": "i", "idempotency_key": "abc"}
    first = api.post("/api/tasks", json=payload)
    second = api.post("/api/tasks", json=payload)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    conflict = api.post("/api/tasks", json={**payload, "instruction": "other"})
    assert conflict.status_code == 409
    assert "different" in conflict.json()["detail"]
    assert count_rows(services) == (1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instruction": "i"}, "repo"),
        ({"repo": "r"}, "instruction"),
        ({"repo": "", "instruction": "i"}, "repo"),
        ({"repo": "r", "instruction": "i", "attempts": 0}, "attempts"),
        ({"repo": "r", "instruction": "i", "attempts": "many"}, "attempts"),
        ({"repo": "r", "instruction": "i", "surprise": 1}, "surprise"),
        ({"repo": "r\nx", "instruction": "i"}, "repo"),
        ({"repo": "r", "instruction": "i", "origin": "github"}, "origin"),
        ([1, 2], "body"),
    ],
)
def test_bad_bodies_get_422_naming_the_field_and_store_nothing(
    api: TestClient, services: Services, body: Any, field: str
) -> None:
    r = api.post("/api/tasks", json=body)
    assert r.status_code == 422, r.text
    assert any(field in detail["loc"] for detail in r.json()["detail"]), r.json()
    assert count_rows(services) == (0, 0)
    assert services.queue.depth() == 0


def test_malformed_json_gets_422_and_stores_nothing(api: TestClient, services: Services) -> None:
    r = api.post(
        "/api/tasks", content=b'{"repo": "r", "instr', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    assert count_rows(services) == (0, 0)


def test_too_many_attempts_is_422_with_the_limit(api: TestClient, services: Services) -> None:
    r = api.post("/api/tasks", json={"repo": "r", "instruction": "i", "attempts": 50})
    assert r.status_code == 422
    assert r.json() == {"detail": "attempts: at most 8 per task, asked for 50"}
    assert count_rows(services) == (0, 0)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer autan_wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
)
def test_every_api_route_needs_a_valid_token(
    api: TestClient, services: Services, headers: dict[str, str]
) -> None:
    api.headers.pop("Authorization")
    for method, path in [
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
        ("GET", "/api/tasks/x"),
        ("POST", "/api/tasks/x/cancel"),
        ("GET", "/api/tasks/x/events"),
    ]:
        r = api.request(method, path, headers=headers, json={"repo": "r", "instruction": "i"})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert count_rows(services) == (0, 0)


def test_a_revoked_token_is_refused(api: TestClient, services: Services) -> None:
    from orchestrator.models import utcnow
    from orchestrator.tokens import revoke_token

    with services.sessions.begin() as s:
        assert revoke_token(s, name="admin", now=utcnow()) == 1
    r = api.get("/api/tasks")
    assert r.status_code == 401
    assert r.json() == {"detail": "invalid, expired or revoked token"}


def test_unknown_ids_are_404(api: TestClient) -> None:
    for method, path in [
        ("GET", "/api/tasks/nope"),
        ("POST", "/api/tasks/nope/cancel"),
        ("GET", "/api/tasks/nope/events"),
    ]:
        r = api.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json() == {"detail": "no task with id 'nope'"}


def test_list_filters_and_pages_newest_first(api: TestClient) -> None:
    ids = [
        api.post("/api/tasks", json={"repo": f"repo-{i % 2}", "instruction": str(i)}).json()["id"]
        for i in range(5)
    ]
    api.post(f"/api/tasks/{ids[0]}/cancel")
    page = api.get("/api/tasks", params={"limit": 2}).json()
    assert [t["id"] for t in page["items"]] == [ids[4], ids[3]]
    newest = page["items"][0]
    assert newest["title"] == "4" and newest["repo"] == "repo-0"
    assert (newest["attempts_requested"], newest["attempts_ended"], newest["cost_usd"]) == (
        1,
        0,
        0.0,
    )
    assert "diff" not in str(newest) and "attempts" not in newest
    seen = [t["id"] for t in page["items"]]
    while page["next_cursor"]:
        page = api.get("/api/tasks", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [t["id"] for t in page["items"]]
    assert seen == ids[::-1]
    repo0 = api.get("/api/tasks", params={"repo": "repo-0"}).json()["items"]
    assert [t["id"] for t in repo0] == [ids[4], ids[2], ids[0]]
    cancelled = api.get("/api/tasks", params={"state": "cancelled"}).json()["items"]
    assert [t["id"] for t in cancelled] == [ids[0]]
    assert api.get("/api/tasks", params={"origin": "slack"}).json()["items"] == []
    assert api.get("/api/tasks", params={"state": "bogus"}).status_code == 422
    assert api.get("/api/tasks", params={"limit": 0}).status_code == 422
    assert api.get("/api/tasks", params={"cursor": "!!"}).status_code == 422


def test_cancel_answers_the_cancelled_task_and_409_once_ended_otherwise(api: TestClient) -> None:
    task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
    r = api.post(f"/api/tasks/{task['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert r.json()["reason"] == "cancelled by token admin"
    assert r.json()["attempts"][0]["state"] == "cancelled"
    assert api.post(f"/api/tasks/{task['id']}/cancel").status_code == 200


def test_openapi_schema_is_served_when_asked_for(services: Services, admin_token: str) -> None:
    app = create_app(services, WebSettings(api_docs=True))
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 401
        auth = {"Authorization": f"Bearer {admin_token}"}
        schema = client.get("/openapi.json", headers=auth).json()
    assert {
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/tasks/{task_id}/cancel",
        "/api/tasks/{task_id}/events",
        "/healthz",
        "/metrics",
    } <= set(schema["paths"])
