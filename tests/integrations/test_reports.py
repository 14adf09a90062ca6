"""Reports that end: refused side effects recorded and not retried, failures that may pass
retried until done, deliveries neither lost nor doubled when the store fails."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from typing import Any

import pytest
from celery.exceptions import Retry
from rich.console import Console
from sqlalchemy.exc import OperationalError

from cli import render
from integrations.errors import ServiceRefused, ServiceUnavailable
from integrations.jira.reporter import JiraReporter
from integrations.report_errors import by_status
from orchestrator import store
from orchestrator.models import utcnow
from orchestrator.reconcile import reconcile
from orchestrator.reporting import Reporters
from orchestrator.schemas import TaskView
from tests.integrations import signing
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks
from tests.integrations.fake_github import Issue
from tests.integrations.fakehttp import Handler, Reply, Request
from tests.integrations.test_github import labeled
from tests.integrations.test_github import post as github_post
from tests.integrations.test_jira import issue_event, post
from tests.orchestrator.conftest import Clock

TRANSITION = r"/rest/api/2/issue/(?P<key>[A-Z]+-\d+)/transitions"
COMMENT = r"/rest/api/2/issue/(?P<key>[A-Z]+-\d+)/comment"


@pytest.fixture
def clock(wired: Wired) -> Clock:
    clock = Clock()
    wired.services.lifecycle.clock = clock
    wired.services.lifecycle.lease_clock = lambda _session: clock()
    return clock


def answer_first(w: Wired, method: str, pattern: str, handler: Handler) -> None:
    """Put `handler` before the fake's own route for `method pattern`."""
    w.jira.routes.insert(0, (method, re.compile(pattern + "$"), handler))


def ended_jira_task(w: Wired) -> tuple[TaskView, Reporters]:
    post(w, issue_event(), delivery="j-1")
    [task] = tasks(w.services)
    finish(w.services, task.id, FIX)
    assert report_jobs(w) == [task.id]  # queued as it ended; the test runs it itself
    return task, Reporters({"jira": JiraReporter(w.jira_settings, w.common, w.publisher())})


def posts(w: Wired, pattern: str) -> int:
    return sum(1 for r in w.jira.requests if r.method == "POST" and re.fullmatch(pattern, r.path))


def leave_running(w: Wired, clock: Clock, reporters: Reporters, hours: float) -> int:
    """What a worker left alone for `hours` does: a reconcile pass every five minutes, and
    each report job queued (by the pass or before) run at once; how many jobs ran."""
    ran = 0
    for _ in range(int(hours * 12)):
        clock.advance(300)
        reconcile(w.services.lifecycle)
        for task_id in report_jobs(w):
            w.services.lifecycle.report(task_id, reporters)
            ran += 1
    return ran


def report_jobs(w: Wired) -> list[str]:
    """The task ids of the report jobs waiting in Redis, taken off it."""
    found = []
    while (raw := w.services.redis.rpop(w.services.queue.report_queue)) is not None:
        args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.append(str(args[0]))
    return found


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (400, {"errorMessages": [], "errors": {"resolution": "Resolution is required."}}),
        (403, {"errorMessages": ["You do not have permission to transition this issue."]}),
    ],
)
def test_a_refused_transition_ends_the_report_with_the_comment_posted_and_the_refusal_recorded(
    wired: Wired, clock: Clock, status: int, refusal: dict[str, Any]
) -> None:
    w = wired
    answer_first(w, "POST", TRANSITION, lambda _r, _m: (status, refusal))
    task, reporters = ended_jira_task(w)

    said = w.services.lifecycle.report(task.id, reporters)
    assert said == "incomplete: not done: transition"
    assert len(w.jira.comments["APP-7"]) == 1
    assert w.jira.status.get("APP-7", "To Do") == "To Do"
    report = w.services.lifecycle.get(task.id).report
    assert report is not None
    assert (report.state, report.tries, report.last_error) == (
        "incomplete",
        1,
        "not done: transition",
    )
    steps = {s.name: (s.state, s.detail) for s in report.steps}
    assert steps["publish"][0] == "done" and "/pull/500" in steps["publish"][1]
    assert steps["comment"] == ("done", "")
    assert steps["transition"][0] == "failed"
    assert steps["transition"][1].startswith(f"Jira answered {status}: ")
    wanted = "Resolution is required." if status == 400 else "You do not have permission"
    assert wanted in steps["transition"][1]

    # Seen on the task page, in `autan status ID` and in /metrics.
    page = w.api.get(f"/api/tasks/{task.id}").json()["report"]
    assert (page["state"], page["tries"]) == ("incomplete", 1)
    assert [(s["name"], s["state"]) for s in page["steps"]] == [
        ("publish", "done"),
        ("comment", "done"),
        ("transition", "failed"),
    ]
    shown = Console(record=True, width=400)
    shown.print(render.task_details(w.services.lifecycle.get(task.id), utcnow()))
    [line] = [x for x in shown.export_text().splitlines() if x.startswith("report")]
    assert line.split(None, 1)[1].startswith(
        f"incomplete (1 try); transition failed: Jira answered {status}: "
    )
    metrics = w.api.get("/metrics").text.splitlines()
    assert 'autan_reports{state="incomplete"} 1.0' in metrics
    assert 'autan_reports{state="retrying"} 0.0' in metrics

    # Left running for a day: no report job is queued again, nothing is called again.
    assert leave_running(w, clock, reporters, hours=24) == 0
    assert w.services.lifecycle.report(task.id, reporters) == "nothing to report"
    assert posts(w, TRANSITION) <= 1 and posts(w, COMMENT) == 1
    assert len(w.github.pulls) == 1
    with w.services.sessions() as session:
        [reported] = [
            e.data
            for e in store.events_after(session, task_id=task.id, seq=0, kind="task.reported")
        ]
    assert reported == {
        "origin": "jira",
        "reporter": True,
        "state": "incomplete",
        "error": "not done: transition",
    }


def test_a_503_then_success_retries_after_the_back_off_and_posts_once(
    wired: Wired, clock: Clock
) -> None:
    w = wired
    failures = [503]

    def flaky(request: Request, m: re.Match[str]) -> Reply:
        if failures:
            return failures.pop(), {"errorMessages": ["Service Unavailable"]}
        return w.jira._comment(request, m)

    answer_first(w, "POST", COMMENT, flaky)
    task, reporters = ended_jira_task(w)

    said = w.services.lifecycle.report(task.id, reporters)
    assert said.startswith("retrying in 10 s: Jira answered 503")
    report = w.services.lifecycle.get(task.id).report
    assert report is not None and report.state == "retrying" and report.next_at is not None
    assert [s.name for s in report.steps] == ["publish"]  # done: not pushed again
    assert w.services.lifecycle.report(task.id, reporters) == "not due, or another job holds it"

    settings = w.services.settings
    clock.advance(max(settings.report_backoff_s, settings.requeue_grace_s * 5) + 1)
    assert reconcile(w.services.lifecycle).reports == 1
    assert w.services.lifecycle.report(task.id, reporters) == "reported"
    assert len(w.jira.comments["APP-7"]) == 1
    assert posts(w, COMMENT) == 2 and posts(w, TRANSITION) == 1
    assert len(w.github.pulls) == 1
    assert w.jira.status["APP-7"] == "In Review"
    done = w.services.lifecycle.get(task.id).report
    assert done is not None
    assert (done.state, done.tries, done.last_error) == ("reported", 2, None)
    assert {s.name: s.state for s in done.steps} == {
        "publish": "done",
        "comment": "done",
        "transition": "done",
    }


def test_a_service_that_stays_down_is_retried_with_back_off_until_the_deadline(
    wired: Wired, clock: Clock
) -> None:
    w = wired
    answer_first(w, "POST", COMMENT, lambda _r, _m: (502, {"errorMessages": ["Bad Gateway"]}))
    task, reporters = ended_jira_task(w)
    w.services.lifecycle.report(task.id, reporters)
    ran = 1 + leave_running(w, clock, reporters, hours=26)
    report = w.services.lifecycle.get(task.id).report
    assert report is not None and report.state == "incomplete"
    assert report.last_error is not None
    assert report.last_error.startswith("gave up at the deadline: Jira answered 502")
    # Back-off doubling to an hour: a few tries an hour at most, never one per pass.
    assert ran == report.tries and ran <= 40
    assert posts(w, COMMENT) == ran
    assert len(w.github.pulls) == 1
    assert w.services.lifecycle.report(task.id, reporters) == "nothing to report"


def test_a_jira_job_that_fails_mid_way_is_retried_and_makes_exactly_one_task(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails under the job (a database lock) and Celery runs it again; Jira sends
    the delivery again meanwhile; a worker dies after the store, before acknowledging, so
    the job runs a third time."""
    w = wired
    submit, failures = w.services.lifecycle.submit, [1]

    def locked(spec: Any, **kw: Any) -> Any:
        if failures:
            failures.pop()
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return submit(spec, **kw)

    monkeypatch.setattr(w.services.lifecycle, "submit", locked)
    first = post(w, issue_event(), delivery="j-9", work=False)
    assert first.json() == {"status": "accepted", "reason": "task for APP-7", "task_id": None}
    [(_, job)] = queued(w.services)
    with pytest.raises(Retry):  # the job fails on the store: Celery will run it again
        drain(w)
    assert tasks(w.services) == []
    again = post(w, issue_event(), delivery="j-9", work=False)  # its job is still pending
    assert again.json()["status"] == "duplicate" and queued(w.services) == []
    processor = w.services.intakes.get("jira")
    processor.process(job, w.services.lifecycle)  # Celery's retry
    [task] = tasks(w.services)
    assert task.idempotency_key == "jira:j-9" and task.origin.external_id == "APP-7"
    processor.process(job, w.services.lifecycle)  # the unacknowledged job, delivered again
    assert [t.id for t in tasks(w.services)] == [task.id]
    assert post(w, issue_event(), delivery="j-9").json()["status"] == "duplicate"
    assert [t.id for t in tasks(w.services)] == [task.id]


@pytest.mark.parametrize(
    ("status", "headers", "kind", "wait"),
    [
        (None, None, ServiceUnavailable, None),
        (500, None, ServiceUnavailable, None),
        (503, {"Retry-After": "120"}, ServiceUnavailable, 120.0),
        (429, {"retry-after": "7"}, ServiceUnavailable, 7.0),
        (408, None, ServiceUnavailable, None),
        (400, None, ServiceRefused, None),
        (403, {"Retry-After": "5"}, ServiceRefused, None),
        (404, None, ServiceRefused, None),
        (422, None, ServiceRefused, None),
    ],
)
def test_answers_are_classified_as_refused_or_worth_a_retry(
    status: int | None, headers: dict[str, str] | None, kind: type[Exception], wait: float | None
) -> None:
    error = by_status("Jira", status, "why", headers)
    assert type(error) is kind
    assert getattr(error, "retry_after", None) == wait


def test_a_bad_retry_after_is_ignored() -> None:
    error = by_status("GitHub", 503, "busy", {"Retry-After": "soon"})
    assert isinstance(error, ServiceUnavailable) and error.retry_after is None


def test_a_signed_duplicate_of_an_accepted_delivery_is_still_a_duplicate(wired: Wired) -> None:
    body, headers = signing.jira(issue_event(), delivery="j-2")
    assert wired.api.post("/hooks/jira", content=body, headers=headers).json()["status"] == (
        "accepted"
    )
    again = wired.api.post("/hooks/jira", content=body, headers=headers)
    assert again.json() == {
        "status": "duplicate",
        "reason": "delivery j-2 was already received",
        "task_id": None,
    }


def test_a_github_delivery_whose_store_write_fails_in_the_worker_makes_exactly_one_task(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = wired
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "2 + 2 gives 0", [])
    submit, failures = w.services.lifecycle.submit, [1]

    def locked(spec: Any, **kw: Any) -> Any:
        if failures:
            failures.pop()
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return submit(spec, **kw)

    monkeypatch.setattr(w.services.lifecycle, "submit", locked)
    first = github_post(w, "issues", labeled(), delivery="d-9", work=False)
    assert first.json()["status"] == "accepted"
    [(_, job)] = queued(w.services)
    with pytest.raises(Retry):  # the job fails on the store: Celery will run it again
        drain(w)
    assert tasks(w.services) == []
    w.services.intakes.get("github").process(job, w.services.lifecycle)  # its retry
    [task] = tasks(w.services)
    assert task.idempotency_key == "github:d-9"
    again = github_post(w, "issues", labeled(), delivery="d-9")
    assert again.json()["status"] == "duplicate"
    assert [t.id for t in tasks(w.services)] == [task.id]
