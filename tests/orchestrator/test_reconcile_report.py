"""The reconciler and the reports, in one process with a clock the test moves."""

from __future__ import annotations

from pathlib import Path

from orchestrator.base import AttemptOutcome
from orchestrator.executor import AttemptExecutor
from orchestrator.lifecycle import Lifecycle
from orchestrator.queue import JOBS_KEY
from orchestrator.reconcile import Reconciled, reconcile
from orchestrator.reporting import Reporters, Steps
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.orchestrator.conftest import Clock
from tests.orchestrator.runners import ScriptedRunner


def submit(lifecycle: Lifecycle, **kw: object) -> TaskView:
    return lifecycle.submit(TaskSpec.model_validate({"repo": "r", "instruction": "i", **kw}))[0]


def test_nothing_to_do_changes_nothing(services: Services, clock: Clock) -> None:
    submit(services.lifecycle)
    clock.advance(services.settings.schedule_to_start_s - 1)
    assert reconcile(services.lifecycle) == Reconciled()
    assert services.queue.depth() == 1


def test_queued_attempts_whose_job_vanished_are_queued_again(
    services: Services, clock: Clock
) -> None:
    task = submit(services.lifecycle, attempts=2)
    services.redis.flushall()  # what a Redis restart without persistence does
    assert reconcile(services.lifecycle).job_lost == 0  # too young: maybe still on its way
    clock.advance(services.settings.requeue_grace_s + 1)
    assert reconcile(services.lifecycle) == Reconciled(job_lost=2)
    assert services.queue.depth() == 2
    assert set(services.redis.hkeys(JOBS_KEY)) == {a.id.encode() for a in task.attempts}
    assert reconcile(services.lifecycle) == Reconciled()  # markers back: no more requeues


def test_a_silent_attempt_is_queued_again_then_failed_after_max_runs(
    services: Services, clock: Clock
) -> None:
    task = submit(services.lifecycle)
    attempt_id = task.attempts[0].id
    for run in range(1, services.settings.max_runs_per_attempt + 1):
        claim = services.lifecycle.claims.claim(attempt_id, worker=f"w{run}")
        assert claim is not None and claim.runs == run
        clock.advance(services.settings.heartbeat_timeout_s + 1)  # the worker dies silently
        assert reconcile(services.lifecycle).worker_lost == 1
        assert services.lifecycle.get(task.id).attempts[0].state == AttemptState.QUEUED
    assert services.lifecycle.claims.claim(attempt_id, worker="one-too-many") is None
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.FAILED
    assert done.reason == "its worker was lost 3 times; not trying again"


def test_an_attempt_past_its_time_limit_ends_timed_out(services: Services, tmp_path: Path) -> None:
    services.lifecycle.settings = services.settings.model_copy(update={"attempt_time_limit_s": 0.5})
    never = tmp_path / "never"
    task = submit(services.lifecycle, instruction=f'{{"wait_for": "{never}"}}')
    executor = AttemptExecutor(services.lifecycle, ScriptedRunner(), "w")
    assert executor.execute(task.attempts[0].id) == "timed_out"
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.TIMED_OUT
    assert done.reason == "ran past the limit of 0.5s"


class RecordingReporter:
    def __init__(self, fail_times: int = 0) -> None:
        self.reported: list[TaskView] = []
        self.fail_times = fail_times

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("origin unreachable")
        self.reported.append(task)


def test_the_origin_s_reporter_is_called_once_with_the_ended_task(services: Services) -> None:
    reporter = RecordingReporter()
    reporters = Reporters({"slack": reporter})
    task = services.lifecycle.submit(
        TaskSpec.model_validate(
            {"repo": "r", "instruction": "i", "origin": {"kind": "slack", "external_id": "C1/1.2"}}
        )
    )[0]
    assert services.lifecycle.report(task.id, reporters) == "nothing to report"  # not ended
    claim = services.lifecycle.claims.claim(task.attempts[0].id, worker="w")
    assert claim is not None
    services.lifecycle.claims.finish(
        claim, AttemptState.SUCCEEDED, outcome=AttemptOutcome(summary="done", verified=True)
    )
    assert services.lifecycle.report(task.id, reporters) == "reported"
    assert services.lifecycle.report(task.id, reporters) == "nothing to report"
    assert len(reporter.reported) == 1
    sent = reporter.reported[0]
    assert (sent.id, sent.state, sent.origin.external_id) == (task.id, "succeeded", "C1/1.2")
    assert sent.result is not None and sent.result.summary == "done"


def test_a_failing_reporter_leaves_the_task_unreported_for_a_retry(
    services: Services, clock: Clock
) -> None:
    reporter = RecordingReporter(fail_times=1)
    reporters = Reporters({"api": reporter})
    task = submit(services.lifecycle)
    services.lifecycle.cancel(task.id)
    said = services.lifecycle.report(task.id, reporters)
    assert said == "retrying in 10 s: ConnectionError: origin unreachable"
    assert services.lifecycle.report(task.id, reporters) == "not due, or another job holds it"
    clock.advance(services.settings.report_backoff_s)
    assert services.lifecycle.report(task.id, reporters) == "reported"
    assert [t.state for t in reporter.reported] == ["cancelled"]
    report = services.lifecycle.get(task.id).report
    assert report is not None and (report.state, report.tries) == ("reported", 2)


def test_origins_without_a_reporter_are_marked_reported(services: Services) -> None:
    task = submit(services.lifecycle)
    services.lifecycle.cancel(task.id)
    assert services.lifecycle.report(task.id, Reporters()) == "no reporter for origin api"
    assert services.lifecycle.report(task.id, Reporters()) == "nothing to report"


def test_submitting_while_redis_is_down_stores_the_task_for_the_reconciler(
    services: Services,
    redis_server,
    clock: Clock,  # type: ignore[no-untyped-def]
) -> None:
    redis_server.stop()
    try:
        task = submit(services.lifecycle)
        assert task.state == TaskState.QUEUED
    finally:
        redis_server.start()
    assert services.queue.depth() == 0
    clock.advance(services.settings.requeue_grace_s + 1)
    assert reconcile(services.lifecycle).job_lost == 1
    assert services.queue.depth() == 1
