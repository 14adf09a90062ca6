"""Slack: a person's reply in a task's thread (Events API) becomes a message to its agent, once,
under the rules of `autan say`; everything else in Slack is ignored or refused, nothing stored."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from agent import AgentConfig
from integrations.config import UserConfig
from orchestrator import messages
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.executor import AttemptExecutor
from orchestrator.models import AuditEntry, Event
from orchestrator.schemas import TaskView
from serving.script import Script
from serving.scripted import start_in_thread
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks

BASH = {"tool_calls": [{"name": "bash", "arguments": {"command": "true"}}]}


def event_body(
    payload: dict[str, Any], *, at: float | None = None, secret: str = signing.SLACK_SECRET
) -> tuple[bytes, dict[str, str]]:
    body, headers = signing.slack(json.dumps(payload), at=at, secret=secret)
    return body, {**headers, "Content-Type": "application/json"}


def reply(
    thread_ts: str, text: str, *, user: str = "U1", event_id: str = "Ev1", **extra: Any
) -> dict[str, Any]:
    event = {
        "type": "message", "channel": "C1", "user": user, "text": text,
        "ts": f"1700000100.{time.monotonic_ns() % 10**6:06d}", "thread_ts": thread_ts,
        "channel_type": "channel", **extra,
    }  # fmt: skip
    return {"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event}


def send(w: Wired, payload: dict[str, Any], **headers: str) -> Any:
    body, signed = event_body(payload)
    return w.api.post("/hooks/slack/events", content=body, headers={**signed, **headers})


def started(w: Wired, user: str = "U1") -> tuple[TaskView, str]:
    """A task started with `/autan` in channel C1, and its thread's ts."""
    form = {
        "command": "/autan", "text": "app make add() add", "user_id": user, "channel_id": "C1",
        "team_id": "T1", "trigger_id": "trig-1", "response_url": w.slack.response_url(),
    }  # fmt: skip
    body, headers = signing.slack(urlencode(form))
    assert w.api.post("/hooks/slack/commands", content=body, headers=headers).status_code == 200
    drain(w)
    [task] = tasks(w.services)
    return task, str(task.origin.data["thread_ts"])


def said(w: Wired) -> list[dict[str, Any]]:
    with w.services.sessions() as session:
        found = session.scalars(
            select(Event).where(Event.kind == messages.KIND).order_by(Event.seq)
        )
        return [e.data for e in found]


def test_a_reply_in_the_thread_reaches_the_agent_once(wired: Wired) -> None:
    w = wired
    w.routing.users["alice"] = UserConfig(slack="U1", team="payments")
    task, thread = started(w)
    r = send(w, reply(thread, "use the new API, please"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "accepted", "reason": f"reply in the thread of task {task.id}", "task_id": task.id,
    }  # fmt: skip
    [(kind, job)] = queued(w.services)
    assert kind == "slack" and job["key"] == "slack:event:Ev1"
    assert job["reply"] == {
        "team": "T1", "channel": "C1", "thread_ts": thread, "user": "U1",
        "text": "use the new API, please",
    }  # fmt: skip
    # Slack's retry of the same event (X-Slack-Retry-Num) is answered, not queued again.
    again = send(w, reply(thread, "use the new API, please"), **{"X-Slack-Retry-Num": "1"})
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert drain(w) == 1
    assert said(w) == [
        {
            "text": "use the new API, please",
            "by": "alice",
            "attempt": None,
            "key": "slack:event:Ev1",
        }
    ]
    # A worker that runs the same job twice (it died before acknowledging) stores it once.
    w.hub.processors()["slack"].process(job, w.services.lifecycle)
    assert len(said(w)) == 1
    inbox = messages.Inbox(w.services.sessions, task.id, task.attempts[0].id)
    [note] = inbox()
    assert (note.text, note.by) == ("use the new API, please", "alice")
    posted = len(w.slack.messages)
    assert posted == 2, "a message passed on gets no answer in the thread"
    with w.services.sessions() as session:
        audited = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        hooks = [(e.actor, e.action, e.target, e.outcome, e.detail) for e in audited]
    assert hooks[-2:] == [
        ("slack-connector", "webhook", "slack", "ok",
         f"accepted: reply in the thread of task {task.id} (task {task.id})"),
        ("slack-connector", "webhook", "slack", "ok", "duplicate: event Ev1 was already received"),
    ]  # fmt: skip


def test_the_url_check_is_answered_with_its_challenge(wired: Wired) -> None:
    r = send(
        wired,
        {
            "type": "url_verification",
            "token": "t",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        },
    )
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert queued(wired.services) == []


def test_bots_autan_itself_and_other_messages_are_ignored(wired: Wired) -> None:
    w = wired
    _, thread = started(w)
    cases = {
        "a bot's": reply(thread, "beep", event_id="E1", bot_id="B1", subtype="bot_message"),
        "Autan's own": reply(thread, "Task queued", event_id="E2", bot_id="B0"),
        "an edit": reply(thread, "x", event_id="E3", subtype="message_changed"),
        "top level": reply(thread, "hi", event_id="E4")
        | {"event": {**reply(thread, "hi")["event"], "thread_ts": None}},
        "another thread": reply("1600000000.000001", "hi", event_id="E5"),
        "not a message": {
            "type": "event_callback",
            "event_id": "E6",
            "event": {"type": "reaction_added"},
        },
        "an app uninstall": {"type": "app_uninstalled"},
    }
    for name, payload in cases.items():
        r = send(w, payload)
        assert (r.status_code, r.json()["status"]) == (200, "ignored"), name
    assert queued(w.services) == [] and said(w) == []


def test_a_stranger_and_a_viewer_are_refused_politely_in_the_thread(wired: Wired) -> None:
    w = wired
    w.routing.users["alice"] = UserConfig(slack="U1", team="payments")
    w.routing.users["vic"] = UserConfig(slack="U3", role="viewer", team="payments")
    task, thread = started(w)
    before = len(w.slack.messages)
    send(w, reply(thread, "do it my way", user="U9", event_id="E1"))
    send(w, reply(thread, "and mine", user="U3", event_id="E2"))
    assert drain(w) == 2
    assert said(w) == []
    stranger, viewer = w.slack.messages[before:]
    assert stranger["thread_ts"] == thread and stranger["channel"] == "C1"
    assert stranger["text"] == (
        "Sorry <@U9>, I did not pass that on: as slack-connector (member) you may not message "
        f"task {task.id}: only its owner, their team and admins may."
    )
    assert viewer["text"].startswith("Sorry <@U3>, I did not pass that on: as vic (viewer)")


def test_a_reply_to_a_finished_task_says_how_to_continue(wired: Wired) -> None:
    w = wired
    task, thread = started(w)
    finish(w.services, task.id, FIX)
    send(w, reply(thread, "one more thing"))
    assert drain(w) == 1
    assert said(w) == []
    answer = w.slack.messages[-1]
    assert answer["thread_ts"] == thread
    assert answer["text"].startswith(f"Task `{task.id}` has ended, so no agent is reading")
    assert f"http://autan.test/tasks/{task.id}" in answer["text"]


def test_forged_stale_and_bad_events_are_refused_and_nothing_is_stored(wired: Wired) -> None:
    w = wired
    _, thread = started(w)
    payload = reply(thread, "sneaky")
    body, good = event_body(payload)
    cases = [
        (event_body(payload, secret="forged"), 401, "does not match"),
        (event_body(payload, at=time.time() - 301), 401, "more than 300 s"),
        ((body, {k: v for k, v in good.items() if k != "X-Slack-Signature"}), 401, "missing"),
        (event_body({"type": "event_callback", "event": {"type": "message"}}), 422, "event_id"),
        (event_body({"no": "type"}), 422, "type"),
        (event_body({"type": "url_verification"}), 422, "challenge"),
    ]
    broken = signing.slack("{not json")
    cases.append(((broken[0], {**broken[1], "Content-Type": "application/json"}), 400, "not JSON"))
    for (content, headers), status, reason in cases:
        r = w.api.post("/hooks/slack/events", content=content, headers=headers)
        assert r.status_code == status, (reason, r.text)
        assert reason in r.json()["detail"]
    assert queued(w.services) == [] and said(w) == []


def test_the_scripted_model_sees_the_reply_in_its_next_request(
    wired: Wired, tmp_path: Path
) -> None:
    w = wired
    w.routing.users["alice"] = UserConfig(slack="U1")
    task, thread = started(w)
    send(w, reply(thread, "the bug is in calc.py"))
    assert drain(w) == 1
    server = start_in_thread(Script.model_validate({"fallback": BASH}))
    try:
        settings = AgentRunnerSettings(
            model_url=server.url, model_name="scripted", sandbox_backend="local",
            sandbox_root=tmp_path / "sandboxes", trees_dir=tmp_path / "trees",
            trajectory_dir=tmp_path / "trajectories", data_dir=tmp_path / "data",
            agent=AgentConfig(
                path=[str(Path(sys.executable).parent)], test_timeout_s=60,
                command_timeout_s=60, max_steps=2,
            ),
        )  # fmt: skip
        executor = AttemptExecutor(w.services.lifecycle, AgentRunner(settings), "w1")
        assert executor.execute(task.attempts[0].id) == "failed"  # its two steps spent
    finally:
        server.stop()
    asked = [
        [m["content"] for m in r["messages"] if m["role"] == "user" and "calc.py" in m["content"]]
        for r in server.requests
    ]
    assert len(asked) == 2 and all(len(found) == 1 for found in asked), asked
    assert "alice" in asked[0][0] and "the bug is in calc.py" in asked[0][0]
