"""A report's tries on SQLite and PostgreSQL: one job at a time, a dead job's lease taken
over, the wait a service asks for, side effects done once across tries."""

from __future__ import annotations

import threading

from orchestrator.errors import SideEffectRefused, SideEffectUnavailable
from orchestrator.lifecycle import Lifecycle
from orchestrator.reconcile import reconcile
from orchestrator.report_runs import _claim
from orchestrator.reporting import Reporters, Steps
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from tests.orchestrator.conftest import Clock

WAIT_S = 10.0


def ended(lifecycle: Lifecycle) -> TaskView:
    task = lifecycle.submit(TaskSpec.model_validate({"repo": "r", "instruction": "i"}))[0]
    lifecycle.cancel(task.id)
    return task


class Scripted:
    """A reporter with two side effects, `comment` and `transition`; each call to one pops
    the next outcome of its script (None: done)."""

    def __init__(self, **script: list[Exception | None]) -> None:
        self.script = script
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        steps = steps or Steps()
        self.entered.set()
        assert self.release.wait(WAIT_S)
        for name in ("comment", "transition"):
            steps.run(name, lambda name=name: self._do(name))  # type: ignore[misc]

    def _do(self, name: str) -> str:
        self.calls.append(name)
        outcome = self.script.get(name, []).pop(0) if self.script.get(name) else None
        if outcome is not None:
            raise outcome
        return f"{name} done"


def test_one_job_at_a_time_holds_a_report(services: Services) -> None:
    reporter = Scripted()
    reporter.release.clear()
    reporters = Reporters({"api": reporter})
    task = ended(services.lifecycle)
    said: list[str] = []
    first = threading.Thread(
        target=lambda: said.append(services.lifecycle.report(task.id, reporters))
    )
    first.start()
    assert reporter.entered.wait(WAIT_S)
    assert services.lifecycle.report(task.id, reporters) == "not due, or another job holds it"
    reporter.release.set()
    first.join(WAIT_S)
    assert said == ["reported"]
    assert reporter.calls == ["comment", "transition"]
    view = services.lifecycle.get(task.id).report
    assert view is not None and (view.state, view.tries) == ("reported", 1)
    assert [(s.name, s.state, s.detail) for s in view.steps] == [
        ("comment", "done", "comment done"),
        ("transition", "done", "transition done"),
    ]


def test_a_job_that_died_holding_the_report_is_taken_over_after_the_lease(
    services: Services, clock: Clock
) -> None:
    reporter = Scripted()
    task = ended(services.lifecycle)
    reporters = Reporters({"api": reporter})
    # A job took the lease and its worker died: the row says leased, nothing ended it.
    assert _claim(services.lifecycle, task.id) is not None
    clock.advance(services.settings.requeue_grace_s * 5 + 1)
    assert reconcile(services.lifecycle).reports == 0
    assert services.lifecycle.report(task.id, reporters) == "not due, or another job holds it"
    clock.advance(services.settings.report_lease_s)
    assert reconcile(services.lifecycle).reports == 1
    assert services.lifecycle.report(task.id, reporters) == "reported"
    view = services.lifecycle.get(task.id).report
    assert view is not None and view.tries == 2


def test_a_failure_that_may_pass_waits_as_asked_and_does_only_what_is_left(
    services: Services, clock: Clock
) -> None:
    reporter = Scripted(transition=[SideEffectUnavailable("Jira answered 429", retry_after=120)])
    task = ended(services.lifecycle)
    reporters = Reporters({"api": reporter})
    assert services.lifecycle.report(task.id, reporters) == "retrying in 120 s: Jira answered 429"
    clock.advance(119)
    assert services.lifecycle.report(task.id, reporters) == "not due, or another job holds it"
    clock.advance(1)
    assert services.lifecycle.report(task.id, reporters) == "reported"
    assert reporter.calls == ["comment", "transition", "transition"]


def test_a_refusal_is_recorded_and_the_other_side_effects_still_happen(
    services: Services, clock: Clock
) -> None:
    refused = SideEffectRefused("Jira answered 403: no Transition permission")
    reporter = Scripted(comment=[refused])
    task = ended(services.lifecycle)
    said = services.lifecycle.report(task.id, Reporters({"api": reporter}))
    assert said == "incomplete: not done: comment"
    assert reporter.calls == ["comment", "transition"]
    view = services.lifecycle.get(task.id).report
    assert view is not None and view.state == "incomplete"
    assert [(s.name, s.state, s.detail) for s in view.steps] == [
        ("comment", "failed", "Jira answered 403: no Transition permission"),
        ("transition", "done", "transition done"),
    ]
    clock.advance(services.settings.report_deadline_s)
    assert reconcile(services.lifecycle).reports == 0


def test_the_deadline_ends_a_report_that_keeps_failing(services: Services, clock: Clock) -> None:
    services.lifecycle.settings = services.settings.model_copy(
        update={"report_deadline_s": 100.0, "report_backoff_s": 30.0}
    )
    down = [SideEffectUnavailable("Slack answered 503") for _ in range(10)]
    reporter = Scripted(comment=down)
    task = ended(services.lifecycle)
    reporters = Reporters({"api": reporter})
    assert services.lifecycle.report(task.id, reporters) == "retrying in 30 s: Slack answered 503"
    clock.advance(30)
    assert services.lifecycle.report(task.id, reporters) == "retrying in 60 s: Slack answered 503"
    clock.advance(60)
    said = services.lifecycle.report(task.id, reporters)
    assert said == "incomplete: gave up at the deadline: Slack answered 503"
    assert reporter.calls == ["comment"] * 3
    view = services.lifecycle.get(task.id).report
    assert view is not None and (view.state, view.tries, view.steps) == ("incomplete", 3, [])
