"""Sentry: a new issue or an alert becomes a reproduce-then-fix task; the result, a comment."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.sentry.reporter import SentryReporter
from integrations.signatures import sign
from integrations.telemetry import REDACTED, Scrubber, init_sentry
from orchestrator.reporting import Reporters
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks


def issue_created(project: str = "backend") -> dict[str, Any]:
    return {
        "action": "created",
        "installation": {"uuid": "7a485448-a9e2-4c85-8a3c-4f44175783c9"},
        "data": {
            "issue": {
                "id": "1170820242",
                "title": "ZeroDivisionError: division by zero",
                "culprit": "app.views in ratio",
                "permalink": "https://sentry.test/organizations/acme/issues/1170820242/",
                "project": {"id": "1", "slug": project, "name": project},
            }
        },
        "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
    }


def event_alert() -> dict[str, Any]:
    return {
        "action": "triggered",
        "data": {
            "event": {
                "event_id": "9fac2ceed9344f2bbfdd1fdacb0ed9b1",
                "issue_id": "1170820242",
                "title": "ZeroDivisionError: division by zero",
                "culprit": "app.views in ratio",
                "project": 1,
                "url": "https://sentry.test/api/0/projects/acme/backend/events/9fac2ceed9344f2bbfdd1fdacb0ed9b1/",
                "web_url": "https://sentry.test/organizations/acme/issues/1170820242/events/9fac/",
            },
            "triggered_rule": "Any new error",
        },
    }


def post(w: Wired, resource: str, payload: Any, *, work: bool = True) -> Any:
    """Deliver; then, unless `work` is False, a worker runs what the delivery queued."""
    body, headers = signing.sentry(resource, payload)
    answer = w.api.post("/hooks/sentry", content=body, headers=headers)
    if work:
        drain(w)
    return answer


def test_a_new_issue_becomes_a_task_with_the_stack_trace_and_gets_a_comment(wired: Wired) -> None:
    w = wired
    r = post(w, "issue", issue_created(), work=False)
    assert r.json() == {"status": "accepted", "reason": "issue 1170820242", "task_id": None}
    assert w.sentry.requests == [] and tasks(w.services) == []
    [(kind, job)] = queued(w.services)
    assert kind == "sentry" and job["key"].startswith("sentry:")
    assert job["problem"]["issue_id"] == "1170820242" and job["problem"]["project"] == "backend"
    assert drain(w) == 1
    [task] = tasks(w.services)
    assert w.sentry.lines() == ["GET /api/0/issues/1170820242/events/latest/"]
    assert w.sentry.requests[0].headers["authorization"] == "Bearer sntrys-token-0123456789"
    for part in (
        "ZeroDivisionError: division by zero",
        "Culprit: app.views in ratio",
        "app/views.py:3 in ratio\n    return a / b",
        "First reproduce it",
    ):
        assert part in task.instruction
    assert task.origin.kind == "sentry" and task.origin.external_id == "1170820242"

    finish(w.services, task.id, FIX)
    reporter = SentryReporter(w.sentry_settings, w.common, w.publisher())
    assert w.services.lifecycle.report(task.id, Reporters({"sentry": reporter})) == "reported"
    assert w.sentry.lines()[1:] == [
        "GET /api/0/issues/1170820242/comments/",
        "POST /api/0/issues/1170820242/comments/",
    ]
    text = w.sentry.requests[-1].json()["text"]
    assert (
        "Pull request: https://github.test/acme/app/pull/500" in text
        and f"(autan task {task.id})" in text
    )
    reporter.report(w.services.lifecycle.get(task.id))
    assert len(w.sentry.notes["1170820242"]) == 1


def test_an_event_alert_for_a_mapped_project_starts_a_task(wired: Wired) -> None:
    assert post(wired, "event_alert", event_alert()).json()["status"] == "accepted"
    [task] = tasks(wired.services)
    assert task.origin.data["project"] == "backend"


@pytest.mark.parametrize(
    ("resource", "payload", "reason"),
    [
        ("installation", {"action": "created"}, "resource 'installation' is not one Autan acts on"),
        (
            "issue",
            {**issue_created(), "action": "resolved"},
            "issue action 'resolved' is not 'created'",
        ),
        ("issue", issue_created(project="frontend"), "project frontend is not in autan.toml"),
    ],
)
def test_events_not_for_autan_are_ignored(
    wired: Wired, resource: str, payload: Any, reason: str
) -> None:
    r = post(wired, resource, payload)
    assert (r.status_code, r.json()["status"], r.json()["reason"]) == (200, "ignored", reason)
    assert tasks(wired.services) == [] and wired.sentry.requests == []


def test_a_repeated_delivery_makes_one_task(wired: Wired) -> None:
    body, headers = signing.sentry("issue", issue_created())
    first = wired.api.post("/hooks/sentry", content=body, headers=headers)
    again = wired.api.post("/hooks/sentry", content=body, headers=headers)
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    assert drain(wired) == 1
    assert len(tasks(wired.services)) == 1


def test_bad_deliveries_get_a_clear_status_and_create_nothing(wired: Wired) -> None:
    body, headers = signing.sentry("issue", issue_created())
    cases = [
        ({**headers, "Sentry-Hook-Signature": "0" * 64}, body, 401, "does not match"),
        (
            {k: v for k, v in headers.items() if k != "Sentry-Hook-Signature"},
            body,
            401,
            "missing Sentry-Hook-Signature",
        ),
        (
            {k: v for k, v in headers.items() if k != "Sentry-Hook-Resource"},
            body,
            400,
            "Sentry-Hook-Resource",
        ),
    ]
    for content, status, reason in [
        (b"nope", 400, "not JSON"),
        (b'{"action": "created", "data": {}}', 422, "payload lacks"),
    ]:
        cases.append(
            (
                {**headers, "Sentry-Hook-Signature": sign(signing.SENTRY_SECRET, content, "")},
                content,
                status,
                reason,
            )
        )
    for sent, content, status, reason in cases:
        r = wired.api.post("/hooks/sentry", content=content, headers=sent)
        assert r.status_code == status, (reason, r.text)
        assert reason in r.json()["detail"]
    assert tasks(wired.services) == []


def test_a_replayed_old_delivery_is_refused_by_its_timestamp(wired: Wired) -> None:
    body, headers = signing.sentry("issue", issue_created())
    now = int(headers["Sentry-Hook-Timestamp"])
    cases = [
        (str(now - 3600), "Sentry-Hook-Timestamp is 3600 s old, more than 300 s: a replay"),
        (str(now + 3600), "Sentry-Hook-Timestamp is from the future, 3600 s ahead"),
        ("yesterday", "Sentry-Hook-Timestamp is not a Unix time in seconds"),
        ("", "missing Sentry-Hook-Timestamp header"),
    ]
    wired.hub.sentry.clock = lambda: float(now)
    for stamp, reason in cases:
        sent = {**headers, "Sentry-Hook-Timestamp": stamp, "Request-ID": stamp or "none"}
        r = wired.api.post("/hooks/sentry", content=body, headers=sent)
        assert r.status_code == 401 and reason in r.json()["detail"], (stamp, r.text)
    assert tasks(wired.services) == [] and queued(wired.services) == []
    # Within the limit, the same delivery is taken.
    fresh = {**headers, "Sentry-Hook-Timestamp": str(now - 299)}
    assert wired.api.post("/hooks/sentry", content=body, headers=fresh).json()["status"] == (
        "accepted"
    )


def test_without_a_client_secret_sentry_deliveries_are_refused(wired: Wired) -> None:
    wired.hub.sentry.settings = wired.sentry_settings.model_copy(update={"client_secret": None})
    r = post(wired, "issue", issue_created())
    assert r.status_code == 503 and "AUTAN_SENTRY_CLIENT_SECRET" in r.json()["detail"]


def test_own_errors_are_scrubbed_of_secrets_and_auth_headers() -> None:
    scrub = Scrubber(["ghp_test_token_0123456789", "short"])
    event: Any = {
        "message": "push failed for ghp_test_token_0123456789@github",
        "request": {"headers": {"Authorization": "Bearer abc", "Accept": "*/*"}},
        "extra": {"pairs": [["X-Hub-Signature-256", "sha256=1"], ["a", "short"]]},
    }
    assert scrub(event, {}) == {
        "message": f"push failed for {REDACTED}@github",
        "request": {"headers": {"Authorization": REDACTED, "Accept": "*/*"}},
        "extra": {"pairs": [["X-Hub-Signature-256", REDACTED], ["a", "short"]]},
    }
    from integrations.sentry.config import SentrySettings

    assert init_sentry(SentrySettings(dsn=None)) is False
