"""Sentry, once per issue: alerts while its task is open are added to it, not made into new
tasks; a regression after a merged fix, or after a task that opened no pull request, is new."""

from __future__ import annotations

from integrations.sentry.reporter import SentryReporter
from orchestrator import store
from orchestrator.reporting import Reporters
from tests.integrations.conftest import FIX, Wired
from tests.integrations.drive import drain, finish, queued, tasks
from tests.integrations.fake_github import Issue
from tests.integrations.test_sentry import event_alert, post


def alerts(w: Wired, task_id: str) -> list[dict[str, object]]:
    with w.services.sessions() as session:
        found = store.events_after(session, task_id=task_id, seq=0, kind="sentry.alert")
        return [e.data for e in found]


def reported(w: Wired, task_id: str) -> None:
    reporter = SentryReporter(w.sentry_settings, w.common, w.publisher())
    assert w.services.lifecycle.report(task_id, Reporters({"sentry": reporter})) == "reported"


def test_two_alerts_for_one_issue_make_one_task_and_an_alert_on_it(wired: Wired) -> None:
    w = wired
    assert post(w, "event_alert", event_alert()).json()["status"] == "accepted"
    [task] = tasks(w.services)
    assert post(w, "event_alert", event_alert(), work=False).json()["status"] == "accepted"
    [(_, job)] = queued(w.services)
    assert drain(w) == 1
    assert [t.id for t in tasks(w.services)] == [task.id]
    [alert] = alerts(w, task.id)
    assert alert == {
        "key": job["key"],
        "issue_id": "1170820242",
        "title": "ZeroDivisionError: division by zero",
        "link": "https://sentry.test/organizations/acme/issues/1170820242/events/9fac/",
    }
    # The worker runs the same job again (a retry): nothing added twice.
    w.services.intakes.get("sentry").process(job, w.services.lifecycle)
    assert len(alerts(w, task.id)) == 1
    assert [r.line for r in w.sentry.requests].count(
        "GET /api/0/issues/1170820242/events/latest/"
    ) == 1


def test_an_alert_while_the_pull_request_is_unmerged_is_a_comment_on_it(wired: Wired) -> None:
    w = wired
    post(w, "event_alert", event_alert())
    [task] = tasks(w.services)
    finish(w.services, task.id, FIX)
    reported(w, task.id)
    [pull] = w.github.pulls
    w.github.issues[pull["number"]] = Issue(pull["title"], "", [])

    post(w, "event_alert", event_alert())
    post(w, "event_alert", event_alert())
    assert [t.id for t in tasks(w.services)] == [task.id]
    assert len(alerts(w, task.id)) == 2
    comments = w.github.issues[pull["number"]].comments
    assert len(comments) == 2
    assert comments[0]["body"].startswith(
        "Sentry alerted again for this issue: ZeroDivisionError: division by zero"
    )
    assert len(w.github.pulls) == 1


def test_a_regression_after_the_fix_is_merged_makes_a_new_task(wired: Wired) -> None:
    w = wired
    post(w, "event_alert", event_alert())
    [task] = tasks(w.services)
    finish(w.services, task.id, FIX)
    reported(w, task.id)
    w.github.pulls[0].update(state="closed", merged=True)

    post(w, "event_alert", event_alert())
    assert len(tasks(w.services)) == 2
    assert alerts(w, task.id) == []


def test_an_alert_after_a_task_that_opened_no_pull_request_makes_a_new_task(
    wired: Wired,
) -> None:
    w = wired
    post(w, "event_alert", event_alert())
    [task] = tasks(w.services)
    w.services.lifecycle.cancel(task.id)
    reported(w, task.id)
    assert w.github.pulls == []

    post(w, "event_alert", event_alert())
    assert len(tasks(w.services)) == 2
