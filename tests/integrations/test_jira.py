"""Jira: a labelled issue becomes a task; the result comes back as a comment and a transition."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from integrations import submit
from integrations.jira.reporter import JiraReporter
from integrations.signatures import sign
from orchestrator.models import utcnow
from orchestrator.reporting import Reporters
from orchestrator.users import create_user, find_user, task_owner
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks


def issue_event(
    kind: str = "jira:issue_created", labels: tuple[str, ...] = ("autan",), **extra: Any
) -> dict[str, Any]:
    return {
        "webhookEvent": kind,
        "timestamp": 1700000000000,
        "issue": {
            "id": "10001",
            "key": "APP-7",
            "fields": {
                "summary": "add() subtracts",
                "description": "2 + 2 gives 0",
                "labels": list(labels),
                "project": {"key": "APP"},
            },
        },
        **extra,
    }


def post(w: Wired, payload: Any, *, work: bool = True, **kw: Any) -> Any:
    """Deliver; then, unless `work` is False, a worker runs what the delivery queued."""
    body, headers = signing.jira(payload, **kw)
    answer = w.api.post("/hooks/jira", content=body, headers=headers)
    if work:
        drain(w)
    return answer


def test_a_labelled_issue_becomes_a_task_and_gets_a_comment_and_a_transition(wired: Wired) -> None:
    w = wired
    r = post(w, issue_event(), delivery="j-1", work=False)
    assert r.json() == {"status": "accepted", "reason": "task for APP-7", "task_id": None}
    assert tasks(w.services) == [] and w.jira.requests == []  # answered before any store
    assert queued(w.services) == [
        (
            "jira",
            {
                "key": "jira:j-1",
                "work": {
                    "key": "APP-7",
                    "project": "APP",
                    "summary": "add() subtracts",
                    "description": "2 + 2 gives 0",
                    "account": None,
                },
            },
        )
    ]
    assert drain(w) == 1
    [task] = tasks(w.services)
    assert task.instruction == "# APP-7: add() subtracts\n\n2 + 2 gives 0"
    assert task.origin.external_id == "APP-7" and task.idempotency_key == "jira:j-1"

    finish(w.services, task.id, FIX)
    reporter = JiraReporter(w.jira_settings, w.common, w.publisher())
    assert w.services.lifecycle.report(task.id, Reporters({"jira": reporter})) == "reported"
    assert w.jira.lines() == [
        "GET /rest/api/2/issue/APP-7/comment",
        "POST /rest/api/2/issue/APP-7/comment",
        "GET /rest/api/2/issue/APP-7",
        "GET /rest/api/2/issue/APP-7/transitions",
        "POST /rest/api/2/issue/APP-7/transitions",
    ]
    body = w.jira.requests[1].json()["body"]
    assert "Pull request: https://github.test/acme/app/pull/500" in body
    assert f"(autan task {task.id})" in body
    assert w.jira.requests[-1].json() == {"transition": {"id": 31}, "fields": {}}
    assert w.jira.status["APP-7"] == "In Review"
    assert w.jira.requests[0].headers["authorization"].startswith("Basic ")

    reporter.report(w.services.lifecycle.get(task.id))  # retried: nothing posted twice
    assert len(w.jira.comments["APP-7"]) == 1
    assert [r.line for r in w.jira.requests if r.method == "POST"] == [
        "POST /rest/api/2/issue/APP-7/comment",
        "POST /rest/api/2/issue/APP-7/transitions",
    ]


def test_an_update_that_adds_the_label_starts_a_task_and_other_updates_do_not(wired: Wired) -> None:
    added = {"items": [{"field": "labels", "fromString": "", "toString": "autan"}]}
    other = {"items": [{"field": "summary", "fromString": "a", "toString": "b"}]}
    assert (
        post(wired, issue_event("jira:issue_updated", changelog=other)).json()["status"]
        == "ignored"
    )
    assert (
        post(wired, issue_event("jira:issue_updated", changelog=added)).json()["status"]
        == "accepted"
    )
    assert len(tasks(wired.services)) == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (issue_event(labels=("bug",)), "APP-7 is not labelled 'autan'"),
        ({"webhookEvent": "comment_created"}, "event 'comment_created' is not one Autan acts on"),
    ],
)
def test_events_not_for_autan_are_ignored(wired: Wired, payload: Any, reason: str) -> None:
    r = post(wired, payload)
    assert (r.status_code, r.json()["status"], r.json()["reason"]) == (200, "ignored", reason)
    assert tasks(wired.services) == []


def test_a_delivery_repeated_while_the_first_is_still_queued_makes_one_task(
    wired: Wired,
) -> None:
    first = post(wired, issue_event(), delivery="same", work=False)
    again = post(wired, issue_event(), delivery="same", work=False)
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    assert again.json()["reason"] == "delivery same was already received"
    assert [job["key"] for _, job in queued(wired.services)] == ["jira:same"]
    assert drain(wired) == 1
    [task] = tasks(wired.services)
    assert task.idempotency_key == "jira:same"
    later = post(wired, issue_event(), delivery="same")  # after the task is stored
    assert later.json()["status"] == "duplicate"
    assert [t.id for t in tasks(wired.services)] == [task.id]


def test_bad_deliveries_get_a_clear_status_and_create_nothing(wired: Wired) -> None:
    body, headers = signing.jira(issue_event())
    cases = [
        ({**headers, "X-Hub-Signature": "sha256=" + "0" * 64}, body, 401, "does not match"),
        (
            {k: v for k, v in headers.items() if k != "X-Hub-Signature"},
            body,
            401,
            "missing X-Hub-Signature",
        ),
        (
            {k: v for k, v in headers.items() if k != "X-Atlassian-Webhook-Identifier"},
            body,
            400,
            "X-Atlassian-Webhook-Identifier",
        ),
    ]
    for content, status, reason in [
        (b"[1, 2", 400, "not JSON"),
        (b'{"webhookEvent": "jira:issue_created"}', 422, "payload"),
    ]:
        cases.append(
            (
                {**headers, "X-Hub-Signature": sign(signing.JIRA_SECRET, content)},
                content,
                status,
                reason,
            )
        )
    for sent, content, status, reason in cases:
        r = wired.api.post("/hooks/jira", content=content, headers=sent)
        assert r.status_code == status, (reason, r.text)
        assert reason in r.json()["detail"]
    assert tasks(wired.services) == [] and queued(wired.services) == []


def test_without_a_webhook_secret_jira_deliveries_are_refused(wired: Wired) -> None:
    wired.hub.jira.settings = wired.jira_settings.model_copy(update={"webhook_secret": None})
    r = post(wired, issue_event())
    assert r.status_code == 503 and "AUTAN_JIRA_WEBHOOK_SECRET" in r.json()["detail"]
    assert tasks(wired.services) == [] and queued(wired.services) == []


def test_a_connector_user_made_by_a_concurrent_delivery_is_taken_not_a_500(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first deliveries at once: the other's user commits after this one looked for it
    and before it inserts (PostgreSQL's read committed), so its insert finds the name taken."""

    with wired.services.lifecycle.write() as (session, _events):  # the other delivery's user
        create_user(session, name="jira-connector", role="member", service=True, now=utcnow())

    def raced(session: Session, **kw: Any) -> Any:
        return create_user(session, **kw)  # as if its look-up ran before the other's commit

    monkeypatch.setattr(submit, "ensure_user", raced)
    r = post(wired, issue_event(), delivery="j-race")
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    [task] = tasks(wired.services)
    with wired.services.sessions() as session:
        user = find_user(session, name="jira-connector")
        assert user is not None and task_owner(session, task_id=task.id).user_id == user.id
