"""Tasks from the connectors belong to the user autan.toml maps the asker to, else to the
connector's service user; the owner's rights follow."""

from __future__ import annotations

from sqlalchemy import select

from integrations.config import UserConfig
from orchestrator.models import AuditEntry, Task, User
from tests.integrations.conftest import Wired
from tests.integrations.test_jira import issue_event, post
from tests.people import bearer, person


def _owners(w: Wired) -> dict[str, User]:
    with w.services.sessions() as session:
        users = {u.id: u for u in session.scalars(select(User))}
        return {
            t.idempotency_key or "": users[t.created_by or ""]
            for t in session.scalars(select(Task))
        }


def test_a_mapped_jira_account_owns_its_task_and_a_stranger_the_connectors(wired: Wired) -> None:
    w = wired
    w.routing.users["alice"] = UserConfig(jira="acc-alice", team="payments", email="a@acme.test")
    assert (
        post(w, issue_event(user={"accountId": "acc-alice"}), delivery="j-1").json()["status"]
        == "accepted"
    )
    assert (
        post(w, issue_event(user={"accountId": "acc-who"}), delivery="j-2").json()["status"]
        == "accepted"
    )
    assert post(w, issue_event(), delivery="j-3").json()["status"] == "accepted"
    with w.services.sessions() as session:
        hooks = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(e.actor, e.action, e.target, e.outcome) for e in hooks] == [
        ("jira-connector", "webhook", "jira", "ok")
    ] * 3
    assert hooks[0].detail is not None and hooks[0].detail.startswith("accepted: task for APP-7")
    owners = _owners(w)
    alice, stranger, nobody = owners["jira:j-1"], owners["jira:j-2"], owners["jira:j-3"]
    assert (alice.name, alice.role, alice.team, alice.email, alice.service) == (
        "alice", "member", "payments", "a@acme.test", False,
    )  # fmt: skip
    assert (stranger.name, stranger.role, stranger.service) == ("jira-connector", "member", True)
    assert nobody.id == stranger.id  # one service user per connector

    with w.services.sessions() as session:
        task_of = {t.idempotency_key: t.id for t in session.scalars(select(Task))}
    outsider = person(w.services, "carol", "member", team="web")
    teammate = person(w.services, "bob", "member", team="payments")
    refused = w.api.post(f"/api/tasks/{task_of['jira:j-1']}/cancel", headers=bearer(outsider))
    assert refused.status_code == 403
    done = w.api.post(f"/api/tasks/{task_of['jira:j-1']}/cancel", headers=bearer(teammate))
    assert (done.status_code, done.json()["state"]) == (200, "cancelled")
    # Nobody's team owns the connector's tasks: only an admin may change them.
    assert (
        w.api.post(f"/api/tasks/{task_of['jira:j-2']}/cancel", headers=bearer(teammate)).status_code
        == 403
    )
