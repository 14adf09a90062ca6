"""The audit log: each change through the API, the dashboard and the webhooks is appended with
who, what, when, from where and the outcome; admins read it; only retention deletes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.audit import Entry, append, storable
from orchestrator.models import AuditEntry, utcnow
from orchestrator.reconcile import Reconciled, reconcile
from orchestrator.services import Services
from tests.people import bearer, person
from tests.web.dashboard import browser_client, csrf_of, sign_in
from web.app import create_app
from web.config import WebSettings

TASK = {"repo": "https://git.example/r.git", "instruction": "i"}


def _rows(client: TestClient, admin: str, **query: Any) -> list[tuple[str, ...]]:
    r = client.get("/api/audit", params=query, headers=bearer(admin))
    assert r.status_code == 200, r.text
    return [
        (e["actor"], e["action"], e["target"] or "", e["outcome"], str(e["status"]))
        for e in reversed(r.json()["items"])
    ]


def test_each_change_is_recorded_with_its_actor_and_outcome(services: Services) -> None:
    admin = person(services, "ada", "admin")
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    vic = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as client:
        task = client.post("/api/tasks", json=TASK, headers=bearer(alice)).json()["id"]
        assert client.post("/api/tasks", json=TASK, headers=bearer(vic)).status_code == 403
        assert client.post(f"/api/tasks/{task}/cancel", headers=bearer(carol)).status_code == 403
        assert client.post(f"/api/tasks/{task}/cancel", headers=bearer(bob)).status_code == 200
        made = client.post(
            "/api/tokens", json={"name": "ci", "user": "alice"}, headers=bearer(admin)
        ).json()
        assert client.delete(f"/api/tokens/{made['id']}", headers=bearer(alice)).status_code == 204
        assert client.post("/api/tasks", json=TASK, headers=bearer("autan_nope")).status_code == 401
        assert client.get("/api/tasks", headers=bearer(alice)).status_code == 200  # a read: none

        assert _rows(client, admin) == [
            ("alice", "task.submit", task, "ok", "201"),
            ("vic", "task.submit", "", "refused", "403"),
            ("carol", "task.cancel", task, "refused", "403"),
            ("bob", "task.cancel", task, "ok", "200"),
            ("ada", "token.create", made["id"], "ok", "201"),
            ("alice", "token.revoke", made["id"], "ok", "204"),
            ("anonymous", "task.submit", "", "refused", "401"),
        ]
        entry = client.get("/api/audit", params={"limit": 1}, headers=bearer(admin)).json()
        [newest] = entry["items"]
        assert newest["address"] == "testclient" and newest["token"] is None
        assert entry["next_cursor"]
        older = client.get("/api/audit", params={"cursor": entry["next_cursor"], "limit": 1},
                           headers=bearer(admin)).json()  # fmt: skip
        assert older["items"][0]["action"] == "token.revoke"
        assert older["items"][0]["token"] == "alice-token"

        assert [r[0] for r in _rows(client, admin, actor="carol")] == ["carol"]
        assert [r[:2] for r in _rows(client, admin, outcome="refused", action="task.cancel")] == [
            ("carol", "task.cancel")
        ]
        assert _rows(client, admin, target=task)[-1][:2] == ("bob", "task.cancel")
        future = (utcnow() + timedelta(hours=1)).isoformat()
        assert _rows(client, admin, since=future) == []

        for query, code in (
            ({"cursor": "garbage!"}, 422),
            ({"outcome": "maybe"}, 422),
            ({"since": "yesterday"}, 422),
            ({"limit": 0}, 422),
        ):
            assert client.get("/api/audit", params=query, headers=bearer(admin)).status_code == code
        for who in (alice, vic):
            assert client.get("/api/audit", headers=bearer(who)).status_code == 403
        assert client.delete("/api/audit", headers=bearer(admin)).status_code == 405


def test_dashboard_sign_in_out_and_buttons_are_recorded(services: Services) -> None:
    admin = person(services, "ada", "admin")
    alice = person(services, "alice", "member")
    with TestClient(create_app(services, WebSettings())) as api:
        task = api.post("/api/tasks", json=TASK, headers=bearer(alice)).json()["id"]
    with browser_client(services) as client:
        page = client.get("/login")
        bad = client.post("/login", data={"csrf": csrf_of(page.text), "token": "autan_nope"})
        assert bad.status_code == 401
        csrf = sign_in(client, alice)
        assert client.get("/audit").status_code == 403  # not an admin
        client.post(f"/tasks/{task}/again", data={"csrf": csrf}, follow_redirects=False)
        client.post(f"/tasks/{task}/cancel", data={"csrf": csrf}, follow_redirects=False)
        client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    with browser_client(services) as client:
        sign_in(client, admin)
        page = client.get("/audit", params={"actor": "alice"})
        assert page.status_code == 200
        assert page.text.count('<tr id="audit-') == 5
        for action in ("signin", "task.retry", "task.cancel", "signout", "task.submit"):
            assert f"<code>{action}</code>" in page.text
        assert 'href="/audit"' in client.get("/tasks").text
    with TestClient(create_app(services, WebSettings())) as api:
        rows = _rows(api, admin, actor="anonymous")
    assert rows == [("anonymous", "signin", "", "refused", "401")]


def test_retention_is_the_only_deletion(services: Services) -> None:
    now = utcnow()
    with services.sessions.begin() as session:
        append(
            session,
            Entry(actor="old", action="task.submit", status=201),
            now=now - timedelta(days=40),
        )
        append(
            session,
            Entry(actor="new", action="task.submit", status=201),
            now=now - timedelta(days=20),
        )
    services.lifecycle.settings.audit_retention_days = 30
    assert reconcile(services.lifecycle) == Reconciled(audit_pruned=1)
    assert reconcile(services.lifecycle) == Reconciled()
    with services.sessions() as session:
        assert list(session.scalars(select(AuditEntry.actor))) == ["new"]
    services.lifecycle.settings.audit_retention_days = None
    with services.sessions.begin() as session:
        append(
            session, Entry(actor="ancient", action="x", status=200), now=now - timedelta(days=9999)
        )
    assert reconcile(services.lifecycle) == Reconciled()
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 2


def test_text_from_a_request_is_kept_as_escapes_either_store_takes() -> None:
    assert storable("key \ud800 and \x00.", 255) == "key \\ud800 and \\x00."
    assert storable("", 5) is None and storable(None, 5) is None
    assert storable("x" * 10, 5) == "xxxxx"
