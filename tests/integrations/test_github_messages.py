"""GitHub: a comment mentioning `@autan` on the pull request of a running task is a message to its
agent, once, under the rules of `autan say`; on a finished task's pull request it starts a
follow-up task as before; forged deliveries and people who may not are refused, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from integrations.config import UserConfig
from orchestrator import messages
from orchestrator.models import Event
from orchestrator.schemas import TaskView
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks
from tests.integrations.fake_github import Issue


def comment(body: str, number: int = 501, sender: str = "octocat") -> dict[str, Any]:
    return {
        "action": "created",
        "issue": {"number": number, "title": "Autan", "pull_request": {"url": "x"}},
        "comment": {"body": body, "user": {"login": sender}},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": sender, "type": "User"},
    }


def post(w: Wired, payload: Any, delivery: str, **kw: Any) -> Any:
    body, headers = signing.github("issue_comment", payload, delivery=delivery, **kw)
    return w.api.post("/hooks/github", content=body, headers=headers)


def said(w: Wired) -> list[dict[str, Any]]:
    with w.services.sessions() as session:
        found = session.scalars(
            select(Event).where(Event.kind == messages.KIND).order_by(Event.seq)
        )
        return [e.data for e in found]


@pytest.fixture
def running(wired: Wired) -> tuple[Wired, TaskView]:
    """A task from a labelled issue, still running, and an open pull request #501 of its branch
    that carries its marker."""
    w = wired
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "2 + 2 gives 0", [])
    labeled = {
        "action": "labeled", "label": {"name": "autan"},
        "issue": {"number": 7, "title": "add() subtracts", "body": "2 + 2 gives 0"},
        "repository": {"full_name": "acme/app"}, "sender": {"login": "octocat", "type": "User"},
    }  # fmt: skip
    body, headers = signing.github("issues", labeled, delivery="d-1")
    assert w.api.post("/hooks/github", content=body, headers=headers).status_code == 200
    drain(w)
    [task] = tasks(w.services)
    w.github.pulls.append(
        {
            "number": 501, "state": "open", "title": "Autan: add() subtracts",
            "body": f"Work in progress\n\n<!-- autan:task:{task.id} -->", "draft": True,
            "head": {"ref": f"autan/{task.id}"}, "base": {"ref": "main"},
        }
    )  # fmt: skip
    w.github.issues[501] = Issue("Autan: add() subtracts", "", [])
    return w, task


def test_a_comment_on_a_running_task_s_pull_request_reaches_its_agent_once(
    running: tuple[Wired, TaskView],
) -> None:
    w, task = running
    r = post(w, comment("@autan use the new API"), "d-2")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    again = post(w, comment("@autan use the new API"), "d-2")
    assert again.json()["status"] == "duplicate"
    assert drain(w) == 1
    assert said(w) == [
        {"text": "@autan use the new API", "by": "github-connector", "attempt": None,
         "key": "github:d-2"},
    ]  # fmt: skip
    assert [t.id for t in tasks(w.services)] == [task.id], "no new task"
    assert w.github.issues[501].comments == [], "nothing posted on the pull request"
    [note] = messages.Inbox(w.services.sessions, task.id, task.attempts[0].id)()
    assert (note.text, note.by) == ("@autan use the new API", "github-connector")
    # A comment that does not mention @autan exactly is not for the agent.
    for body in ("ops@autan.dev please", "> @autan quoted", "`@autan` in code"):
        assert post(w, comment(body), f"d-{body}").json()["status"] == "ignored"
    assert queued(w.services) == [] and len(said(w)) == 1


def test_on_a_finished_task_s_pull_request_a_follow_up_starts_and_takes_the_next_comments(
    running: tuple[Wired, TaskView],
) -> None:
    w, task = running
    finish(w.services, task.id, FIX)
    post(w, comment("@autan also add a docstring"), "d-2")
    assert drain(w) == 1
    assert said(w) == []
    follow = next(t for t in tasks(w.services) if t.id != task.id)
    assert follow.ref == f"autan/{task.id}" and follow.origin.external_id == "acme/app#501"
    post(w, comment("@autan and keep it short"), "d-3")
    assert drain(w) == 1
    assert [(d["text"], d["key"]) for d in said(w)] == [("@autan and keep it short", "github:d-3")]
    with w.services.sessions() as session:
        stored = session.scalars(select(Event).where(Event.kind == messages.KIND)).one()
    assert stored.task_id == follow.id
    assert len(tasks(w.services)) == 2


def test_people_who_may_not_message_the_task_are_ignored_and_forgeries_refused(
    running: tuple[Wired, TaskView],
) -> None:
    w, task = running
    w.github.permissions["mallory"] = "read"
    w.github.permissions["vic"] = "write"
    w.routing.users["vic"] = UserConfig(github="vic", role="viewer")
    w.routing.users["carol"] = UserConfig(github="carol", team="web")
    w.github.permissions["carol"] = "admin"
    for n, sender in enumerate(("mallory", "vic", "carol")):
        assert post(w, comment("@autan do it my way", sender=sender), f"c-{n}").status_code == 200
    assert drain(w) == 3
    forged = post(w, comment("@autan sneaky"), "d-9", secret="forged")
    assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
    assert said(w) == [] and queued(w.services) == []
    assert [t.id for t in tasks(w.services)] == [task.id]
    assert w.github.issues[501].comments == []
