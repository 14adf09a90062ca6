"""/api/users (admins): users made, listed and changed; a change of role binds the user's
tokens at their next request; every change is in the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orchestrator.services import Services
from tests.people import bearer, person
from web.app import create_app
from web.config import WebSettings

TASK = {"repo": "https://git.example/r.git", "instruction": "i"}


def test_an_admin_makes_and_changes_users_and_their_tokens_follow(services: Services) -> None:
    admin = person(services, "ada", "admin")
    alice = person(services, "alice", "member", team="payments")
    with TestClient(create_app(services, WebSettings())) as client:
        made = client.post(
            "/api/users", json={"name": "bot", "role": "viewer", "service": True},
            headers=bearer(admin),
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert {k: made.json()[k] for k in ("name", "role", "team", "email", "service")} == {
            "name": "bot", "role": "viewer", "team": None, "email": None, "service": True,
        }  # fmt: skip
        listed = client.get("/api/users", headers=bearer(admin)).json()
        assert [u["name"] for u in listed] == ["ada", "alice", "bot"]

        assert client.post("/api/tasks", json=TASK, headers=bearer(alice)).status_code == 201
        changed = client.patch(
            "/api/users/alice", json={"role": "viewer", "team": ""}, headers=bearer(admin)
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["role"], changed.json()["team"]) == ("viewer", None)
        refused = client.post("/api/tasks", json=TASK, headers=bearer(alice))
        assert refused.status_code == 403 and "is a viewer" in refused.json()["detail"]

        for method, path, body, code in (
            ("POST", "/api/users", {"name": "bot", "role": "member"}, 409),
            ("POST", "/api/users", {"name": "x", "role": "root"}, 422),
            ("POST", "/api/users", {"name": "", "role": "member"}, 422),
            ("PATCH", "/api/users/nobody", {"role": "admin"}, 404),
            ("PATCH", "/api/users/alice", {"role": None}, 422),
            ("PATCH", "/api/users/alice", {"is_admin": True}, 422),
        ):
            r = client.request(method, path, json=body, headers=bearer(admin))
            assert r.status_code == code, (method, path, body, r.text)
        r = client.patch("/api/users/alice", json={"role": "admin"}, headers=bearer(alice))
        assert r.status_code == 403  # nobody makes themselves an admin
        assert client.get("/api/users", headers=bearer(alice)).status_code == 403

        log = client.get(
            "/api/audit", params={"action": "user.change"}, headers=bearer(admin)
        ).json()["items"]
        assert [(e["actor"], e["target"], e["outcome"]) for e in log] == [
            ("alice", "alice", "refused"), ("ada", "alice", "rejected"), ("ada", "alice", "rejected"),
            ("ada", "nobody", "rejected"), ("ada", "alice", "ok"),
        ]  # fmt: skip
        assert log[-1]["detail"] == "role=viewer, team="
