"""Continuing a finished task over the API and from the task page: the new task links back
both ways and starts from the chosen attempt's diff; refused with a reason, and nothing
stored, for a running task, an unknown attempt, an attempt without a diff, a viewer and
another team's member."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator.base import AttemptOutcome
from orchestrator.models import AuditEntry, Task
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.people import bearer, person
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings

TASK = {"repo": "https://git.example/r.git", "instruction": "start it", "attempts": 3}
COMMIT = "0123456789abcdef" * 2 + "01234567"


def _finish(services: Services, task: dict[str, object]) -> None:
    """Attempt 1 verified with a diff (kept), attempt 2 partial with one, attempt 3 with none."""
    lifecycle = services.lifecycle
    diffs = {1: ("+whole\n", False), 2: ("+half\n", True), 3: ("", False)}
    for attempt in task["attempts"]:  # type: ignore[attr-defined]
        claim = lifecycle.claims.claim(attempt["id"], worker="w1")
        assert claim is not None
        lifecycle.claims.pin_commit(claim, COMMIT)
        diff, partial = diffs[attempt["number"]]
        verified = attempt["number"] == 1
        outcome = AttemptOutcome(summary="s", diff=diff, verified=verified, partial=partial)
        state = AttemptState.FAILED if partial else AttemptState.SUCCEEDED
        lifecycle.claims.finish(claim, state, outcome=outcome)


def _tasks(services: Services) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Task)) or 0


def test_a_finished_task_is_continued_from_the_chosen_attempt(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    bob = person(services, "bob", "member", team="payments")
    with TestClient(create_app(services, WebSettings())) as client:
        task = client.post("/api/tasks", json=TASK, headers=bearer(alice)).json()
        _finish(services, task)
        url = f"/api/tasks/{task['id']}/continue"
        r = client.post(url, json={"instruction": "now the docs"}, headers=bearer(bob))
        assert r.status_code == 201, r.text
        kept = r.json()
        assert kept["continued_from"] == {"task": task["id"], "attempt": 1}
        assert (kept["instruction"], kept["repo"], kept["commit"]) == (
            "now the docs", TASK["repo"], COMMIT,
        )  # fmt: skip
        assert kept["start_patch"] == "+whole\n" and len(kept["attempts"]) == 3
        assert "The earlier instruction:\nstart it" in kept["conversation"]
        assert kept["origin"]["kind"] == "api" and kept["state"] == "queued"
        r = client.post(
            url, json={"instruction": "from the half", "attempt": 2}, headers=bearer(bob)
        )
        assert r.status_code == 201, r.text
        half = r.json()
        assert (half["continued_from"]["attempt"], half["start_patch"]) == (2, "+half\n")
        original = client.get(f"/api/tasks/{task['id']}", headers=bearer(alice)).json()
        assert original["continued_as"] == [kept["id"], half["id"]]
        assert original["continued_from"] is None and original["retry_of"] is None
    with services.sessions() as session:
        actions = [
            (a.action, a.actor, a.status, a.target, a.detail)
            for a in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "task.continue")
                .order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        ("task.continue", "bob", 201, task["id"], f"new task {kept['id']}"),
        ("task.continue", "bob", 201, task["id"], f"new task {half['id']}"),
    ]


def test_refused_continuations_say_why_and_store_nothing(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    carol = person(services, "carol", "member", team="web")
    viewer = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as client:
        task = client.post("/api/tasks", json=TASK, headers=bearer(alice)).json()
        url = f"/api/tasks/{task['id']}/continue"

        def refused(body: object, raw: str = alice) -> tuple[int, str]:
            r = client.post(url, json=body, headers=bearer(raw))
            return r.status_code, str(r.json()["detail"])

        status, why = refused({"instruction": "more"})
        assert status == 409 and f"task {task['id']} has not finished (queued)" in why
        _finish(services, task)
        assert refused({"instruction": "more", "attempt": 4}) == (
            404, f"task {task['id']} has no attempt 4",
        )  # fmt: skip
        assert refused({"instruction": "more", "attempt": 3}) == (
            422, f"attempt 3 of task {task['id']} left no diff to continue from",
        )  # fmt: skip
        assert refused({"instruction": ""})[0] == 422
        assert refused({"instruction": "more", "attempt": 0})[0] == 422
        assert refused({"instruction": "more", "extra": 1})[0] == 422
        status, why = refused({"instruction": "more"}, viewer)
        assert status == 403 and "viewer" in why
        status, why = refused({"instruction": "more"}, carol)
        assert status == 403 and "neither yours nor your team's" in why
        missing = client.post(
            "/api/tasks/nope/continue", json={"instruction": "x"}, headers=bearer(alice)
        )
        assert missing.status_code == 404
        assert client.post(url, json={"instruction": "x"}).status_code == 401
        assert (
            client.get(url.removesuffix("/continue"), headers=bearer(alice)).json()["continued_as"]
            == []
        )
    assert _tasks(services) == 1


def test_the_task_page_continues_a_finished_task(services: Services) -> None:
    alice = person(services, "alice", "member", team="payments")
    viewer = person(services, "vic", "viewer")
    with TestClient(create_app(services, WebSettings())) as api:
        task = api.post("/api/tasks", json=TASK, headers=bearer(alice)).json()
    url = f"/tasks/{task['id']}/continue"
    with browser_client(services) as client:
        csrf = sign_in(client, alice)
        assert f'action="{url}"' not in client.get(f"/tasks/{task['id']}").text  # still queued
        assert client.post(url, data={"csrf": csrf, "instruction": "x"}).status_code == 409
        _finish(services, task)
        page = client.get(f"/tasks/{task['id']}").text
        assert f'action="{url}"' in page and 'name="instruction"' in page
        assert '<option value="2">attempt 2</option>' in page and 'value="3"' not in page
        made = client.post(
            url, data={"csrf": csrf, "instruction": "and the docs", "attempt": "2"},
            follow_redirects=False,
        )  # fmt: skip
        assert made.status_code == 303, made.text
        later = made.headers["location"].rsplit("/", 1)[1]
        page = client.get(f"/tasks/{later}").text
        assert f'href="/tasks/{task["id"]}?attempt=2"' in page and "attempt 2</a>" in page
        back = client.get(f"/tasks/{task['id']}").text
        assert f'<dd id="continued-as"><a href="/tasks/{later}">' in back
        assert client.post(url, data={"csrf": "wrong", "instruction": "x"}).status_code == 403
        bad = client.post(url, data={"csrf": csrf, "instruction": "", "attempt": "1"})
        assert bad.status_code == 422 and "the task was not continued: instruction:" in bad.text
    with browser_client(services) as client:
        csrf = sign_in(client, viewer)
        assert f'action="{url}"' not in client.get(f"/tasks/{task['id']}").text
        assert client.post(url, data={"csrf": csrf, "instruction": "x"}).status_code == 403
    assert _tasks(services) == 2
