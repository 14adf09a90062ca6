"""Every connector's intake under fuzzing: strangers get 4xx, never 500, and make nothing;
signed but broken payloads get 4xx too."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integrations import signing
from tests.integrations.conftest import Wired
from tests.integrations.drive import drain, queued, tasks
from tests.integrations.mutate import HUGE, bodies, json_values, odd_text
from tests.integrations.test_jira import issue_event
from tests.integrations.test_sentry import event_alert, issue_created

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ROUTES = {
    "github": "/hooks/github",
    "slack": "/hooks/slack/commands",
    "jira": "/hooks/jira",
    "sentry": "/hooks/sentry",
}

GITHUB_PAYLOADS = {
    "issues": {
        "action": "labeled",
        "label": {"name": "autan"},
        "issue": {"number": 7, "title": "add() subtracts", "body": "2 + 2 gives 0"},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat", "type": "User"},
    },
    "issue_comment": {
        "action": "created",
        "issue": {"number": 7, "title": "add() subtracts", "pull_request": None},
        "comment": {"body": "@autan please fix", "user": {"login": "octocat"}},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat", "type": "User"},
    },
    "pull_request_review_comment": {
        "action": "created",
        "pull_request": {
            "number": 8,
            "title": "Fix add()",
            "head": {"ref": "autan/t1", "repo": {"full_name": "acme/app"}},
        },
        "comment": {
            "body": "@autan rename this",
            "user": {"login": "octocat"},
            "path": "calc.py",
            "diff_hunk": "@@ -1 +1 @@",
        },
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat", "type": "User"},
    },
}


def hexmac(secret: str, body: bytes) -> str:
    return signing.hexmac(secret, body)


def signed(name: str, body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers that sign `body` for connector `name` as its service does."""
    if name == "github":
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hexmac(signing.GITHUB_SECRET, body),
        }
    elif name == "slack":
        stamp = str(int(time.time()))
        base = b"v0:" + stamp.encode() + b":" + body
        headers = {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + hexmac(signing.SLACK_SECRET, base),
        }
    elif name == "jira":
        headers = {
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "X-Hub-Signature": "sha256=" + hexmac(signing.JIRA_SECRET, body),
        }
    else:
        headers = {
            "Sentry-Hook-Resource": "issue",
            "Sentry-Hook-Signature": hexmac(signing.SENTRY_SECRET, body),
            "Sentry-Hook-Timestamp": str(int(time.time())),
            "Request-ID": str(uuid.uuid4()),
        }
    return {**headers, **(extra or {})}


def unsigned(name: str, body: bytes, how: str) -> dict[str, str]:
    """The service's headers with the signature missing, forged, or not a signature at all."""
    headers = signed(name, body)
    header = {
        "github": "X-Hub-Signature-256",
        "slack": "X-Slack-Signature",
        "jira": "X-Hub-Signature",
        "sentry": "Sentry-Hook-Signature",
    }[name]
    if how == "missing":
        del headers[header]
    elif how == "forged":
        headers[header] = headers[header][:-4] + "0000"
    else:
        headers[header] = "not a signature " + "=" * 60
    return headers


def answered(w: Wired, name: str, body: bytes, headers: dict[str, str]) -> Any:
    r = w.api.post(ROUTES[name], content=body, headers=headers)
    assert r.status_code < 500, r.text
    return r


raw_or_json = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


@FUZZ
@given(
    name=st.sampled_from(sorted(ROUTES)),
    body=raw_or_json | st.just(b"\xff\xfe not UTF-8 text=\x80"),
    how=st.sampled_from(["missing", "forged", "garbage"]),
)
def test_unsigned_requests_get_401_and_make_nothing(
    wired: Wired, name: str, body: bytes, how: str
) -> None:
    r = answered(wired, name, body, unsigned(name, body, how))
    assert r.status_code == 401, r.text
    assert queued(wired.services) == [] and tasks(wired.services) == []


@FUZZ
@given(
    event=st.sampled_from([*GITHUB_PAYLOADS, "ping", "push"]),
    data=st.data(),
)
def test_signed_github_deliveries_never_get_500(wired: Wired, event: str, data: Any) -> None:
    payload = GITHUB_PAYLOADS.get(event, GITHUB_PAYLOADS["issues"])
    body = data.draw(bodies(payload).map(lambda v: json.dumps(v).encode()) | st.binary())
    r = answered(wired, "github", body, signed("github", body, {"X-GitHub-Event": event}))
    assert r.status_code in (200, 400, 422), r.text


FORM = {
    "command": "/autan",
    "text": "app make add() add",
    "user_id": "U1",
    "channel_id": "C1",
    "team_id": "T1",
    "trigger_id": "trig-1",
    "response_url": "http://127.0.0.1:9/response",
}


@st.composite
def forms(draw: st.DrawFn) -> bytes:
    """A slash command's form with a field removed or replaced, or bytes that are no form."""
    form = dict(FORM, trigger_id=f"trig-{uuid.uuid4()}")
    field = draw(st.sampled_from(sorted(form)))
    how = draw(st.sampled_from(["remove", "replace", "raw"]))
    if how == "raw":
        return draw(st.binary(max_size=300))
    if how == "remove":
        del form[field]
    else:
        form[field] = draw(odd_text | st.text(max_size=40)).replace("\ud800", "?")
    return urlencode(form).encode()


@FUZZ
@given(body=forms())
def test_signed_slack_commands_never_get_500(wired: Wired, body: bytes) -> None:
    r = answered(wired, "slack", body, signed("slack", body))
    assert r.status_code in (200, 400, 422), r.text


@FUZZ
@given(
    data=st.data(),
    kind=st.sampled_from(["jira:issue_created", "jira:issue_updated"]),
)
def test_signed_jira_deliveries_never_get_500(wired: Wired, data: Any, kind: str) -> None:
    jira_case(wired, data, kind)


def jira_case(w: Wired, data: Any, kind: str) -> None:
    """What Jira's intake accepts, its worker job stores (also fuzzed on PostgreSQL, which
    refuses text SQLite takes): a refusal belongs in the answer, not in a failing job."""
    added = {"changelog": {"items": [{"field": "labels", "fromString": "", "toString": "autan"}]}}
    payload = issue_event(kind, **added)
    body = data.draw(bodies(payload).map(lambda v: json.dumps(v).encode()) | st.binary())
    headers = signed("jira", body)
    r = answered(w, "jira", body, headers)
    assert r.status_code in (200, 400, 422), r.text
    if r.json().get("status") == "accepted":
        assert drain(w) == 1
        key = "jira:" + headers["X-Atlassian-Webhook-Identifier"]
        assert key in {t.idempotency_key for t in tasks(w.services)}
    assert queued(w.services) == []


@FUZZ
@given(data=st.data(), resource=st.sampled_from(["issue", "event_alert", "installation"]))
def test_signed_sentry_deliveries_never_get_500(wired: Wired, data: Any, resource: str) -> None:
    payload = event_alert() if resource == "event_alert" else issue_created()
    body = data.draw(bodies(payload).map(lambda v: json.dumps(v).encode()) | st.binary())
    headers = signed("sentry", body, {"Sentry-Hook-Resource": resource})
    r = answered(wired, "sentry", body, headers)
    assert r.status_code in (200, 400, 422), r.text


def test_an_unsigned_slack_request_that_is_not_utf8_gets_401(wired: Wired) -> None:
    body = b"text=\xff\xfe&user_id=U1"
    headers = unsigned("slack", body, "forged")
    r = wired.api.post(ROUTES["slack"], content=body, headers=headers)
    assert r.status_code == 401
    assert "X-Slack-Signature does not match" in r.json()["detail"]
    # Signed, the same bytes are refused as no form, still not a 500.
    r = wired.api.post(ROUTES["slack"], content=body, headers=signed("slack", body))
    assert r.status_code == 400 and "not a form" in r.json()["detail"]
    assert tasks(wired.services) == [] and queued(wired.services) == []


def test_a_signed_sentry_issue_without_a_project_gets_422(wired: Wired) -> None:
    payload = issue_created()
    payload["data"]["issue"]["project"] = None
    body, headers = signing.sentry("issue", payload)
    r = wired.api.post(ROUTES["sentry"], content=body, headers=headers)
    assert r.status_code == 422 and "project" in r.json()["detail"]
    assert queued(wired.services) == []


def test_a_jira_description_nested_deep_or_huge_gets_an_answer_not_500(wired: Wired) -> None:
    def nested(depth: int) -> bytes:
        document = '{"type": "paragraph", "content": [' * depth + '{"type": "text", "text": "deep"}'
        payload = json.dumps(issue_event()).replace('"2 + 2 gives 0"', document + "]}" * depth)
        return payload.encode()

    # Deep but readable: the description's text is found without recursion.
    body = nested(200)
    r = wired.api.post(ROUTES["jira"], content=body, headers=signed("jira", body))
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert drain(wired) == 1
    assert tasks(wired.services)[0].instruction == "# APP-7: add() subtracts\n\ndeep"
    # Deeper than Python's JSON reader goes: a 400 that says why.
    body = nested(50_000)
    r = wired.api.post(ROUTES["jira"], content=body, headers=signed("jira", body))
    assert r.status_code == 400 and "nested" in r.json()["detail"]
    huge = issue_event()
    huge["issue"]["fields"]["description"] = "x" * HUGE
    body = json.dumps(huge).encode()
    r = wired.api.post(ROUTES["jira"], content=body, headers=signed("jira", body))
    assert r.status_code == 422, r.text  # over the instruction's limit: refused in the answer
    assert "makes no task" in r.json()["detail"] and "100000 characters" in r.json()["detail"]
    assert queued(wired.services) == [] and len(tasks(wired.services)) == 1


@pytest.mark.parametrize("summary", ["nul \x00 byte", "half \ud800 a pair"])
def test_a_signed_jira_issue_whose_text_cannot_be_stored_gets_422(
    wired: Wired, summary: str
) -> None:
    payload = issue_event()
    payload["issue"]["fields"]["summary"] = summary
    body, headers = signing.jira(payload)
    r = wired.api.post(ROUTES["jira"], content=body, headers=headers)
    assert r.status_code == 422 and "makes no task" in r.json()["detail"]
    assert tasks(wired.services) == [] and queued(wired.services) == []


def test_an_answer_echoing_a_lone_surrogate_is_sent_escaped(wired: Wired) -> None:
    payload = issue_event()
    payload["issue"]["fields"]["project"]["key"] = "\ud800"
    body, headers = signing.jira(payload)
    r = wired.api.post(ROUTES["jira"], content=body, headers=headers)
    assert r.status_code == 200 and b"\\ud800" in r.content
    assert r.json()["reason"] == "project \ud800 is not in autan.toml"
