"""A person's message to a running task over the API and from the task page: stored as an event once, refused with a
reason (and nothing stored) for bad text, an ended task, a viewer and another team's member."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.models import AuditEntry, Event
from orchestrator.services import Services
from tests.people import bearer, person
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings

TASK = {"repo": "https://git.example/r.git", "instruction": "i", "attempts": 2}


def _messages(services: Services) -> list[Event]:
    with services.sessions() as session:
        return list(session.scalars(select(Event).where(Event.kind == "person.message")))


def test_a_message_is_stored_for_every_attempt_or_the_one_named(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    with TestClient(create_app(services, WebSettings())) as client:
        task = client.post("/api/tasks", json=TASK, headers=bearer(alice)).json()
        r = client.post(
            f"/api/tasks/{task['id']}/messages", json={"text": "use tabs"}, headers=bearer(bob)
        )
        assert r.status_code == 201, r.text
        sent = r.json()
        assert (sent["kind"], sent["attempt_id"]) == ("person.message", None)
        assert sent["data"] == {"text": "use tabs", "by": "bob", "attempt": None}
        second = next(a for a in task["attempts"] if a["number"] == 2)
        r = client.post(
            f"/api/tasks/{task['id']}/messages",
            json={"text": " only you\n\tplease ", "attempt": 2},
            headers=bearer(alice),
        )
        assert r.status_code == 201, r.text
        assert (r.json()["attempt_id"], r.json()["seq"]) == (second["id"], sent["seq"] + 1)
    stored = _messages(services)
    assert [e.data["text"] for e in stored] == ["use tabs", "only you\n\tplease"]
    with services.sessions() as session:
        actions = [
            (a.action, a.actor, a.status, a.target)
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.action.like("task.m%")).order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        ("task.messages", "bob", 201, task["id"]),
        ("task.messages", "alice", 201, task["id"]),
    ]


def test_bad_messages_are_refused_with_a_reason_and_nothing_stored(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    viewer = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as client:
        task_id = client.post("/api/tasks", json=TASK, headers=bearer(alice)).json()["id"]
        url = f"/api/tasks/{task_id}/messages"

        def refused(body: object, raw: str = alice) -> tuple[int, str]:
            r = client.post(url, json=body, headers=bearer(raw))
            return r.status_code, str(r.json()["detail"])

        assert refused({"text": ""})[0] == 422
        status, why = refused({"text": "  \n "})
        assert status == 422 and "at least 1 character" in why
        status, why = refused({"text": "x" * 8001})
        assert status == 422 and "8000" in why
        status, why = refused({"text": "bell\x07"})
        assert status == 422 and "control characters" in why and "U+0007" in why
        assert refused({"text": "hi", "attempt": 0})[0] == 422
        assert refused({"text": "hi", "extra": 1})[0] == 422
        assert refused({})[0] == 422
        assert refused({"text": "hi", "attempt": 3}) == (404, f"task {task_id} has no attempt 3")
        status, why = refused({"text": "hi"}, viewer)
        assert status == 403 and "viewer" in why
        assert refused({"text": "hi"}, carol) == (
            403,
            f"task {task_id} is neither yours nor your team's: a member may change only those",
        )
        missing = client.post(
            "/api/tasks/nope/messages", json={"text": "hi"}, headers=bearer(alice)
        )
        assert missing.status_code == 404
        no_token = client.post(url, json={"text": "hi"})
        assert no_token.status_code == 401

        assert client.post(f"/api/tasks/{task_id}/cancel", headers=bearer(alice)).status_code == 200
        status, why = refused({"text": "too late"})
        assert status == 409 and f"task {task_id} has ended (cancelled)" in why
    assert _messages(services) == []


def test_the_task_page_s_message_box_sends_through_the_session(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    viewer = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as api:
        task_id = api.post("/api/tasks", json=TASK, headers=bearer(alice)).json()["id"]
    url = f"/tasks/{task_id}/messages"
    with browser_client(services) as client:
        csrf = sign_in(client, alice)
        page = client.get(f"/tasks/{task_id}").text
        assert f'action="{url}"' in page and 'name="text"' in page and "attempt 2" in page
        sent = client.post(
            url,
            data={"csrf": csrf, "text": "look at lib.py", "attempt": "1"},
            follow_redirects=False,
        )
        assert (sent.status_code, sent.headers["location"]) == (303, f"/tasks/{task_id}#message")
        forged = client.post(url, data={"csrf": "wrong", "text": "x"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        elsewhere = client.post(
            url, data={"csrf": csrf, "text": "x"}, headers={"Origin": "http://127.0.0.1:29200"}
        )
        assert elsewhere.status_code == 403
        bad = client.post(url, data={"csrf": csrf, "text": "bell\x07"})
        assert bad.status_code == 422 and "the message was not sent: text:" in bad.text
        bad_attempt = client.post(url, data={"csrf": csrf, "text": "x", "attempt": "two"})
        assert bad_attempt.status_code == 422 and "attempt:" in bad_attempt.text
    with browser_client(services) as client:
        csrf = sign_in(client, viewer)
        assert f'action="{url}"' not in client.get(f"/tasks/{task_id}").text
        assert client.post(url, data={"csrf": csrf, "text": "x"}).status_code == 403
    with TestClient(create_app(services, WebSettings())) as api:
        assert api.post(f"/api/tasks/{task_id}/cancel", headers=bearer(alice)).status_code == 200
    with browser_client(services) as client:
        csrf = sign_in(client, alice)
        assert f'action="{url}"' not in client.get(f"/tasks/{task_id}").text
        assert client.post(url, data={"csrf": csrf, "text": "late"}).status_code == 409
    stored = _messages(services)
    assert [(e.data["text"], e.data["by"], e.data["attempt"]) for e in stored] == [
        ("look at lib.py", "alice", 1)
    ]
