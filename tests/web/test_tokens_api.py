"""POST/GET/DELETE /api/tokens: admins manage anyone's tokens, members their own, and no token
gives more than it has."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.models import ApiToken, utcnow
from orchestrator.services import Services
from tests.people import bearer, person
from web.app import create_app
from web.config import WebSettings

TASK = {"repo": "https://git.example/r.git", "instruction": "i"}


def _count(services: Services) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiToken)) or 0


def test_an_admin_makes_a_scoped_expiring_token_for_a_member(services: Services) -> None:
    admin = person(services, "ada", "admin")
    alice = person(services, "alice", "member", team="payments")
    expires = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    with TestClient(create_app(services, WebSettings())) as client:
        r = client.post(
            "/api/tokens",
            json={"name": "alice-ci", "user": "alice", "scopes": ["tasks:read"],
                  "expires_at": expires.isoformat()},
            headers=bearer(admin),
        )  # fmt: skip
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["token"].startswith("autan_")
        assert (made["name"], made["user"], made["scopes"]) == ("alice-ci", "alice", ["tasks:read"])
        assert made["expires_at"].startswith(expires.isoformat()[:19])
        assert made["last_used_at"] is None and made["revoked_at"] is None
        assert client.get("/api/tasks", headers=bearer(made["token"])).status_code == 200
        assert (
            client.post("/api/tasks", json=TASK, headers=bearer(made["token"])).status_code == 403
        )

        everyone = client.get("/api/tokens", headers=bearer(admin)).json()
        assert sorted(t["name"] for t in everyone) == ["ada-token", "alice-ci", "alice-token"]
        assert all("token" not in t for t in everyone)
        hers = client.get("/api/tokens", params={"user": "alice"}, headers=bearer(alice)).json()
        assert sorted(t["name"] for t in hers) == ["alice-ci", "alice-token"]
        used = next(t for t in hers if t["name"] == "alice-ci")
        assert used["last_used_at"] is not None  # its first use was recorded

        r = client.post("/api/tokens", json={"name": "x", "user": "nobody"}, headers=bearer(admin))
        assert (r.status_code, r.json()["detail"]) == (404, "no user named 'nobody'")


def test_a_member_manages_only_their_own_tokens_and_cannot_widen_one(services: Services) -> None:
    alice = person(services, "alice", "member")
    bob = person(services, "bob", "member")
    reader = person(services, "alice", "member", scopes=["tasks:read"])  # another of alice's
    with TestClient(create_app(services, WebSettings())) as client:
        own = client.post("/api/tokens", json={"name": "laptop"}, headers=bearer(alice))
        assert own.status_code == 201
        assert own.json()["scopes"] == ["tasks:read", "tasks:write", "workspaces"]
        narrow = client.post("/api/tokens", json={"name": "n"}, headers=bearer(reader)).json()
        assert narrow["scopes"] == ["tasks:read"]  # within the token that made it
        before = _count(services)
        refusals = [
            ({"name": "x", "user": "bob"}, alice, 403, "only an admin manages other users'"),
            ({"name": "x", "scopes": ["admin"]}, alice, 403, "lacks admin"),
            ({"name": "x", "scopes": ["tasks:write"]}, reader, 403, "lacks tasks:write"),
            ({"name": "x", "scopes": ["root"]}, alice, 422, "scope 'root' is not one of"),
            ({"name": "x", "scopes": []}, alice, 422, "at least one scope"),
            ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, alice, 422, "in the future"),
            ({"name": "x", "expires_at": "2999-01-01T00:00:00"}, alice, 422, "timezone"),
            ({"name": ""}, alice, 422, "at least 1 character"),
            ({"name": "x", "admin": True}, alice, 422, "Extra inputs"),
        ]
        for body, who, code, reason in refusals:
            r = client.post("/api/tokens", json=body, headers=bearer(who))
            assert r.status_code == code, (body, r.text)
            assert reason in str(r.json()["detail"]), (body, r.text)
        assert _count(services) == before
        assert (
            client.get("/api/tokens", params={"user": "bob"}, headers=bearer(alice)).status_code
            == 403
        )
        bobs = client.get("/api/tokens", headers=bearer(bob)).json()
        assert [t["name"] for t in bobs] == ["bob-token"]

        r = client.delete(f"/api/tokens/{bobs[0]['id']}", headers=bearer(alice))
        assert r.status_code == 404  # another's token is as unknown as none
        assert client.get("/api/tasks", headers=bearer(bob)).status_code == 200
        laptop = own.json()
        assert (
            client.delete(f"/api/tokens/{laptop['id']}", headers=bearer(alice)).status_code == 204
        )
        again = client.delete(f"/api/tokens/{laptop['id']}", headers=bearer(alice))
        assert (again.status_code, again.json()["detail"]) == (
            409, "token 'laptop' was revoked already",
        )  # fmt: skip
        assert client.get("/api/tasks", headers=bearer(laptop["token"])).status_code == 401
        listed = client.get("/api/tokens", headers=bearer(alice)).json()
        assert next(t for t in listed if t["id"] == laptop["id"])["revoked_at"] is not None
