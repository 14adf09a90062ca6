"""What senders and users are told: exact `@autan` mentions, and answers that say what to do."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest

from integrations.text import mentions
from orchestrator.runners import NoRunner
from tests.integrations import signing
from tests.integrations.conftest import Wired
from tests.integrations.drive import queued
from tests.integrations.test_slack import command


@pytest.mark.parametrize(
    ("body", "asked"),
    [
        ("@autan fix the sum", True),
        ("Could you look, @Autan?", True),
        ("thanks (@autan).", True),
        ("first line\n\n@autan: second line", True),
        ("`code` then @autan", True),
        ("write to ops@autan.dev", False),
        ("cc @autanomous-team", False),
        ("ping @autan-bot", False),
        ("the @autan/ops team", False),
        ("> @autan do this\n\nI disagree.", False),
        ("   > quoted: @autan", False),
        ("run `@autan fix` to start", False),
        ("```\n@autan inside a fence\n```\n", False),
        ("~~~md\n@autan\n~~~", False),
        ("```\nunclosed fence\n@autan", False),
        ("", False),
        (None, False),
    ],
)
def test_a_mention_is_at_autan_as_a_word_outside_quotes_and_code(
    body: str | None, asked: bool
) -> None:
    assert mentions(body) is asked


COMMENT = {
    "action": "created",
    "issue": {"number": 7, "title": "add() subtracts"},
    "repository": {"full_name": "acme/app"},
    "sender": {"login": "octocat", "type": "User"},
}


def comment(w: Wired, body: str) -> Any:
    payload = {**COMMENT, "comment": {"body": body, "user": {"login": "octocat"}}}
    sent, headers = signing.github("issue_comment", payload)
    return w.api.post("/hooks/github", content=sent, headers=headers).json()


def test_only_an_exact_mention_in_a_github_comment_starts_work(wired: Wired) -> None:
    for body in ("mail ops@autan.dev", "cc @autanomous-team", "> @autan fix it", "`@autan`"):
        answer = comment(wired, body)
        assert answer["status"] == "ignored" and "does not mention @autan" in answer["reason"]
    assert queued(wired.services) == []
    assert comment(wired, "@autan fix it")["status"] == "accepted"
    assert [kind for kind, _ in queued(wired.services)] == ["github"]


def test_a_form_encoded_github_webhook_is_told_to_choose_json(wired: Wired) -> None:
    body, headers = signing.github("issues", {})
    form = b"payload=" + body
    headers = {
        **headers,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Hub-Signature-256": "sha256=" + signing.hexmac(signing.GITHUB_SECRET, form),
    }
    r = wired.api.post("/hooks/github", content=form, headers=headers)
    assert r.status_code == 400
    assert "choose `application/json`" in r.json()["detail"]
    assert queued(wired.services) == []


def test_a_slack_timestamp_from_the_future_is_called_so(wired: Wired) -> None:
    form = urlencode(command(wired, "app do it"))
    body, headers = signing.slack(form, at=time.time() + 3600)
    r = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    assert r.status_code == 401
    detail = r.json()["detail"]
    assert "from the future" in detail and "ahead of this server's clock" in detail
    assert " old" not in detail
    body, headers = signing.slack(form, at=time.time() - 3600)
    r = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    assert r.status_code == 401 and "s old, more than 300 s" in r.json()["detail"]


@pytest.mark.parametrize("stamp", ["-5", "1e9", "9" * 40])
def test_a_slack_timestamp_that_is_no_time_gets_401(wired: Wired, stamp: str) -> None:
    body, headers = signing.slack(urlencode(command(wired, "app do it")))
    r = wired.api.post(
        "/hooks/slack/commands",
        content=body,
        headers={**headers, "X-Slack-Request-Timestamp": stamp},
    )
    assert r.status_code == 401 and "not a Unix time" in r.json()["detail"]


def test_without_a_bot_token_slack_is_not_promised_a_thread(wired: Wired) -> None:
    wired.hub.slack.settings = wired.slack_settings.model_copy(update={"bot_token": None})
    body, headers = signing.slack(urlencode(command(wired, "app do it")))
    r = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    assert r.json() == {"response_type": "ephemeral", "text": "On it: `app`. I answer here."}
    body, headers = signing.slack(urlencode(command(wired, "help")))
    help_text = wired.api.post("/hooks/slack/commands", content=body, headers=headers).json()
    assert help_text["text"].startswith(
        "*Autan* runs a coding agent on a repository and answers here."
    )
    assert "thread" not in help_text["text"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("app " + "x" * 100_001, "String should have at most 100000 characters"),
        ("app ring\x07the bell", "must not contain control characters"),
    ],
)
def test_an_instruction_that_cannot_become_a_task_is_refused_before_on_it(
    wired: Wired, text: str, why: str
) -> None:
    body, headers = signing.slack(urlencode(command(wired, text)))
    r = wired.api.post("/hooks/slack/commands", content=body, headers=headers)
    assert r.status_code == 200
    answer = r.json()["text"]
    assert answer.startswith(f"That instruction cannot become a task: {why}")
    assert "On it" not in answer and "/autan REPO INSTRUCTION" in answer
    assert queued(wired.services) == [] and wired.slack.requests == []


def test_no_runner_says_how_to_set_one_and_nothing_of_how_autan_was_built() -> None:
    with pytest.raises(Exception, match="AUTAN_RUNNER") as raised:
        NoRunner().run(None)  # type: ignore[arg-type]
    assert "issue" not in str(raised.value)
