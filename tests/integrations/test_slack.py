"""Slack: signed `/autan` commands answer at once, run tasks and reply in a thread."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from integrations.slack.reporter import SlackReporter
from orchestrator.reporting import Reporters
from orchestrator.states import TaskState
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import COMMIT, drain, finish, queued, tasks


def command(w: Wired, text: str, user: str = "U1", **extra: str) -> dict[str, str]:
    return {
        "command": "/autan",
        "text": text,
        "user_id": user,
        "channel_id": "C1",
        "team_id": "T1",
        "trigger_id": f"trig-{time.monotonic_ns()}",
        "response_url": w.slack.response_url(),
        **extra,
    }


def post(w: Wired, form: dict[str, str] | str, *, work: bool = True, **kw: Any) -> Any:
    """Send the command; then, unless `work` is False, a worker runs what it queued."""
    body, headers = signing.slack(form if isinstance(form, str) else urlencode(form), **kw)
    answer = w.api.post("/hooks/slack/commands", content=body, headers=headers)
    if work:
        drain(w)
    return answer


def test_a_command_is_acknowledged_then_answered_in_a_thread(wired: Wired, remote: Any) -> None:
    w = wired
    sent = command(w, "app make add() add", token="legacy-verification-token")
    r = post(w, sent, work=False)
    assert r.status_code == 200
    assert r.json() == {"response_type": "ephemeral", "text": "On it: `app`. I answer in a thread."}
    # The thread waits for a worker; the queued job holds no token.
    assert w.slack.requests == [] and tasks(w.services) == []
    asker = {k: sent[k] for k in ("team_id", "user_id", "channel_id", "response_url")}
    assert queued(w.services) == [
        (
            "slack",
            {
                "key": f"slack:C1:{sent['trigger_id']}",
                "form": asker,
                "name": "app",
                "instruction": "make add() add",
            },
        )
    ]
    assert drain(w) == 1
    [task] = tasks(w.services)
    assert (task.repo, task.instruction) == (str(remote), "make add() add")
    data = task.origin.data
    assert (
        data["channel"] == "C1"
        and data["user"] == "U1"
        and data["thread_ts"] == "1700000000.000000"
    )
    opened, noted = w.slack.messages
    assert opened["channel"] == "C1" and "<@U1> asked on `app`" in opened["text"]
    assert noted["thread_ts"] == opened["ts"]
    assert noted["text"] == f"Task `{task.id}` queued: http://autan.test/tasks/{task.id}"
    assert w.slack.requests[0].headers["authorization"] == "Bearer xoxb-test-0123456789"

    finish(w.services, task.id, FIX)
    reporter = SlackReporter(w.slack_settings, w.common, w.publisher())
    assert w.services.lifecycle.report(task.id, Reporters({"slack": reporter})) == "reported"
    result = w.slack.messages[-1]
    assert result["thread_ts"] == opened["ts"]
    assert result["metadata"] == {
        "event_type": "autan_task_report",
        "event_payload": {"task_id": task.id},
    }
    assert (
        "Fixed add()." in result["text"]
        and "Pull request: https://github.test/acme/app/pull/500" in result["text"]
        and f"Commit: {COMMIT[:12]}\n" in result["text"]
    )
    reporter.report(w.services.lifecycle.get(task.id))  # a retried report
    assert len(w.slack.messages) == 3
    assert w.slack.lines()[-3:] == [
        "POST /api/conversations.replies",
        "POST /api/chat.postMessage",
        "POST /api/conversations.replies",
    ]


def test_without_a_bot_token_the_answer_goes_to_response_url(wired: Wired) -> None:
    w = wired
    w.hub.slack.settings = w.slack_settings.model_copy(update={"bot_token": None})
    post(w, command(w, "fix the flaky test"))  # channel C1 defaults to `app`
    [task] = tasks(w.services)
    assert task.instruction == "fix the flaky test"
    assert w.slack.responses[0]["text"].startswith(f"Task `{task.id}` queued")
    finish(w.services, task.id, "")
    SlackReporter(w.hub.slack.settings, w.common, w.publisher()).report(
        w.services.lifecycle.get(task.id)
    )
    assert w.slack.responses[-1]["response_type"] == "in_channel"
    assert w.slack.messages == []


def test_status_cancel_and_help(wired: Wired) -> None:
    w = wired
    post(w, command(w, "app do it"))
    [task] = tasks(w.services)
    shown = post(w, command(w, f"status {task.id}")).json()["text"]
    assert shown.startswith(f"`{task.id}` queued: do it")
    assert f"`{task.id}` queued" in post(w, command(w, "status")).json()["text"]
    assert post(w, command(w, "status nope")).json()["text"] == "No task `nope`."
    assert (
        post(w, command(w, f"cancel {task.id}", user="U2")).json()["text"]
        == "You may not cancel tasks."
    )
    assert (
        post(w, command(w, f"cancel {task.id}")).json()["text"] == f"Task `{task.id}`: cancelled."
    )
    assert w.services.lifecycle.get(task.id).state == TaskState.CANCELLED
    assert "/autan REPO INSTRUCTION" in post(w, command(w, "help")).json()["text"]
    assert "/autan REPO INSTRUCTION" in post(w, command(w, "")).json()["text"]


def test_users_not_mapped_cannot_start_work(wired: Wired) -> None:
    r = post(wired, command(wired, "app do it", user="U9"))
    assert "not among the Slack users allowed" in r.json()["text"]
    assert tasks(wired.services) == [] and wired.slack.requests == []


def test_bad_commands_get_a_clear_status_and_create_nothing(wired: Wired) -> None:
    w = wired
    form = urlencode(command(w, "app do it"))
    body, headers = signing.slack(form)
    stale_body, stale = signing.slack(form, at=time.time() - 301)
    cases = [
        ({**headers, "X-Slack-Signature": "v0=" + "0" * 64}, body, 401, "does not match"),
        (signing.slack(form, secret="forged")[1], body, 401, "does not match"),
        (stale, stale_body, 401, "s old, more than 300 s"),
        ({k: v for k, v in headers.items() if k != "X-Slack-Signature"}, body, 401, "missing"),
        (
            {k: v for k, v in headers.items() if k != "X-Slack-Request-Timestamp"},
            body,
            401,
            "missing",
        ),
    ]
    malformed, malformed_headers = signing.slack("no equals sign")
    cases.append((malformed_headers, malformed, 400, "not a form"))
    partial, partial_headers = signing.slack(urlencode({"command": "/autan", "text": "app x"}))
    cases.append((partial_headers, partial, 422, "lacks user_id, channel_id, response_url"))
    for sent, content, status, reason in cases:
        r = w.api.post("/hooks/slack/commands", content=content, headers=sent)
        assert r.status_code == status, (reason, r.text)
        assert reason in r.json()["detail"]
    assert tasks(w.services) == [] and w.slack.requests == []
    assert queued(w.services) == []


def test_a_replayed_command_makes_one_task(wired: Wired) -> None:
    body, headers = signing.slack(urlencode(command(wired, "app do it")))
    first = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    again = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    assert first.json()["text"].startswith("On it")
    assert (again.status_code, again.json()["text"]) == (200, "Got it.")
    assert drain(wired) == 1
    assert len(tasks(wired.services)) == 1


def test_without_a_signing_secret_commands_are_refused(wired: Wired) -> None:
    wired.hub.slack.settings = wired.slack_settings.model_copy(update={"signing_secret": None})
    r = post(wired, command(wired, "app do it"))
    assert r.status_code == 503 and "AUTAN_SLACK_SIGNING_SECRET" in r.json()["detail"]


def test_placeholder_secrets_are_refused() -> None:
    import pytest

    from integrations.slack.config import SlackSettings

    with pytest.raises(ValueError, match="placeholder"):
        SlackSettings(signing_secret=SecretStr("changethis"))
