"""Roles and scopes over the API and the dashboard: viewers read only, members change their own
and their team's tasks, admins any; a token does no more than its scopes allow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.models import ApiToken, Task, User, utcnow
from orchestrator.services import Services
from orchestrator.tokens import issue_token
from tests.people import bearer, person
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
TASK = {"repo": "https://git.example/r.git", "instruction": "i"}


def _tasks(services: Services) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Task)) or 0


def _submit(client: TestClient, raw: str) -> str:
    r = client.post("/api/tasks", json=TASK, headers=bearer(raw))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_viewer_reads_and_every_write_route_refuses_it(services: Services) -> None:
    admin = person(services, "ada", "admin")
    viewer = person(services, "vic", "viewer")
    app = create_app(services, WebSettings())
    with TestClient(app) as client:
        task_id = _submit(client, admin)
        schema = app.openapi()
        writes = [
            (method.upper(), path.replace("{task_id}", task_id))
            for path, methods in schema["paths"].items()
            if path.startswith("/api/")
            for method in methods
            if method.upper() in WRITES
        ]
        assert len(writes) >= 8, writes  # tasks, cancel, workspaces, blobs, conflicts, tokens
        before = _tasks(services)
        for method, path in writes:
            path = path.replace("{", "").replace("}", "")
            r = client.request(method, path, headers=bearer(viewer), json={})
            assert r.status_code == 403, (method, path, r.text)
            assert "vic" in r.json()["detail"] and "viewer" in r.json()["detail"]
        assert _tasks(services) == before
        assert client.get(f"/api/tasks/{task_id}", headers=bearer(viewer)).json()["state"] in (
            "queued",
            "running",
        )
        listed = client.get("/api/tasks", headers=bearer(viewer))
        assert [t["id"] for t in listed.json()["items"]] == [task_id]


def test_members_change_their_own_and_their_teams_tasks_only(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    dave = person(services, "dave", "member")  # no team: only his own
    admin = person(services, "ada", "admin")
    with TestClient(create_app(services, WebSettings())) as client:
        first, second, third = (_submit(client, alice) for _ in range(3))
        with services.sessions() as session:
            owner = session.scalars(select(User).where(User.name == "alice")).one()
            makers = set(session.scalars(select(Task.created_by)))
        assert makers == {owner.id}

        refused = client.post(f"/api/tasks/{first}/cancel", headers=bearer(carol))
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            f"task {first} is neither yours nor your team's: a member may change only those"
        )
        assert client.post(f"/api/tasks/{first}/cancel", headers=bearer(dave)).status_code == 403
        assert client.get(f"/api/tasks/{first}", headers=bearer(carol)).json()["state"] == "queued"

        by_team = client.post(f"/api/tasks/{first}/cancel", headers=bearer(bob))
        assert (by_team.status_code, by_team.json()["state"]) == (200, "cancelled")
        own = client.post(f"/api/tasks/{second}/cancel", headers=bearer(alice))
        assert own.status_code == 200
        by_admin = client.post(f"/api/tasks/{third}/cancel", headers=bearer(admin))
        assert by_admin.status_code == 200
        missing = client.post("/api/tasks/nope/cancel", headers=bearer(alice))
        assert missing.status_code == 404


def test_a_token_does_only_what_its_scopes_and_its_users_role_allow(services: Services) -> None:
    reader = person(services, "rita", "member", scopes=["tasks:read"])
    expired = person(services, "eve", "member", expires_at=utcnow() + timedelta(hours=1))
    with services.sessions.begin() as session:
        eve = session.scalars(select(User).where(User.name == "eve")).one()
        with pytest.raises(ValueError, match="scope 'admin' is more than a member may have"):
            issue_token(session, user=eve, name="x", scopes=["admin"], now=utcnow())
        with pytest.raises(ValueError, match="scope 'everything' is not one of"):
            issue_token(session, user=eve, name="x", scopes=["everything"], now=utcnow())
        with pytest.raises(ValueError, match="expires_at must be in the future"):
            now = utcnow()
            issue_token(session, user=eve, name="x", now=now, expires_at=now)
    with TestClient(create_app(services, WebSettings())) as client:
        r = client.post("/api/tasks", json=TASK, headers=bearer(reader))
        assert r.status_code == 403
        assert "needs the 'tasks:write' scope" in r.json()["detail"]
        assert client.get("/api/tasks", headers=bearer(reader)).status_code == 200
        assert client.get("/api/workspaces", headers=bearer(reader)).status_code == 403
        assert _tasks(services) == 0
        assert client.get("/api/tasks", headers=bearer(expired)).status_code == 200
        with services.sessions.begin() as session:  # its expiry passes
            token = session.scalars(select(ApiToken).where(ApiToken.name == "eve-token")).one()
            token.expires_at = utcnow() - timedelta(seconds=1)
        gone = client.get("/api/tasks", headers=bearer(expired))
        assert (gone.status_code, gone.json()) == (
            401,
            {"detail": "invalid, expired or revoked token"},
        )


def test_the_dashboard_offers_only_the_buttons_a_person_may_use(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    viewer = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as api:
        task_id = _submit(api, alice)
    with browser_client(services) as client:
        csrf = sign_in(client, alice)
        own = client.get(f"/tasks/{task_id}").text
        assert "Cancel task" in own and "Retry" in own and 'href="/new"' in own
    for raw in (carol, viewer):
        with browser_client(services) as client:
            csrf = sign_in(client, raw)
            page = client.get(f"/tasks/{task_id}").text
            assert "Cancel task" not in page and "Retry" not in page
            assert "Run again" not in page
            for action in ("cancel", "again"):
                r = client.post(f"/tasks/{task_id}/{action}", data={"csrf": csrf})
                assert r.status_code == 403, r.text
                why = "neither yours nor your team" if raw is carol else "the &#39;tasks:write&#39;"
                assert why in r.text, r.text
            if raw is viewer:
                assert 'href="/new"' not in page
                assert client.get("/new").status_code == 403
                made = client.post("/new", data={"csrf": csrf, "repo": "r", "instruction": "i"})
                assert made.status_code == 403
    assert _tasks(services) == 1
    with TestClient(create_app(services, WebSettings())) as api:
        assert api.get(f"/api/tasks/{task_id}", headers=bearer(alice)).json()["state"] == "queued"
