"""The lifecycle in one process against a real store and Redis: claims, ends, choice, cancel."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select

from orchestrator.base import AttemptOutcome
from orchestrator.errors import IdempotencyConflict, InvalidSubmission, LeaseLost
from orchestrator.events import ENDED_STREAM_TTL_S, stream_key
from orchestrator.executor import AttemptExecutor
from orchestrator.models import Attempt, Event, Task
from orchestrator.queue import JOBS_KEY
from orchestrator.runners import NoRunner
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.orchestrator.runners import ScriptedRunner


def spec(**kw: object) -> TaskSpec:
    return TaskSpec.model_validate({"repo": "/srv/repo.git", "instruction": "fix it", **kw})


def event_kinds(services: Services, task_id: str) -> list[tuple[int, str]]:
    with services.sessions() as s:
        rows = s.execute(
            select(Event.seq, Event.kind).where(Event.task_id == task_id).order_by(Event.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_submit_stores_task_attempts_and_queues_one_job_each(services: Services) -> None:
    task, created = services.lifecycle.submit(spec(attempts=3, ref="main"))
    assert created
    assert task.state == TaskState.QUEUED
    assert [a.number for a in task.attempts] == [1, 2, 3]
    assert all(a.state == AttemptState.QUEUED for a in task.attempts)
    assert services.queue.depth() == 3
    assert services.redis.hlen(JOBS_KEY) == 3
    assert event_kinds(services, task.id) == [(1, "task.created")]


def test_attempts_over_the_limit_are_refused_and_nothing_is_stored(services: Services) -> None:
    with pytest.raises(InvalidSubmission, match="at most 8"):
        services.lifecycle.submit(spec(attempts=9))
    with services.sessions() as s:
        assert s.scalars(select(Task)).all() == []
    assert services.queue.depth() == 0


def test_same_idempotency_key_returns_the_same_task(services: Services) -> None:
    first, created = services.lifecycle.submit(spec(idempotency_key="k1"))
    again, created_again = services.lifecycle.submit(spec(idempotency_key="k1"))
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert services.queue.depth() == 1
    with pytest.raises(IdempotencyConflict, match="different"):
        services.lifecycle.submit(spec(idempotency_key="k1", instruction="something else"))


def test_racing_submissions_with_one_key_make_one_task(services: Services) -> None:
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def submit() -> None:
        barrier.wait()
        ids.append(services.lifecycle.submit(spec(idempotency_key="race"))[0].id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    with services.sessions() as s:
        assert len(s.scalars(select(Task)).all()) == 1
    assert services.queue.depth() == 1


def run_all(services: Services, runner: object, task_id: str) -> None:
    executor = AttemptExecutor(services.lifecycle, runner, "test-worker")  # type: ignore[arg-type]
    for attempt in services.lifecycle.get(task_id).attempts:
        executor.execute(attempt.id)


def test_best_attempt_is_verified_first_then_smallest_diff(services: Services) -> None:
    script = (
        '{"by_attempt": {'
        '"1": {"diff": "a\\nb\\nc\\n", "verified": true},'
        '"2": {"diff": "a\\n", "verified": true},'
        '"3": {"diff": "", "verified": false},'
        '"4": {"fail": "model gave up"}}}'
    )
    task, _ = services.lifecycle.submit(spec(instruction=script, attempts=4))
    run_all(services, ScriptedRunner(), task.id)
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED
    assert done.reason == "kept attempt 2 of 4"
    assert done.result is not None and done.result.diff == "a\n"
    assert [a.state for a in done.attempts] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert done.attempts[3].reason == "model gave up"
    assert done.finished_at is not None
    kinds = [k for _, k in event_kinds(services, task.id)]
    assert kinds.count("task.finished") == 1
    assert kinds[-1] == "task.finished"
    live = services.redis.xrange(stream_key(task.id))
    assert [int(fields[b"seq"]) for _, fields in live] == list(range(1, len(kinds) + 1))
    assert 0 < services.redis.ttl(stream_key(task.id)) <= ENDED_STREAM_TTL_S


def test_all_attempts_failing_fail_the_task_with_their_reasons(services: Services) -> None:
    task, _ = services.lifecycle.submit(
        spec(
            instruction='{"by_attempt": {"1": {"fail": "tests red"}, "2": {"crash": true}}}',
            attempts=2,
        )
    )
    run_all(services, ScriptedRunner(), task.id)
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.FAILED
    assert done.reason == (
        "attempt 1: tests red; attempt 2: the runner crashed: ZeroDivisionError: scripted crash"
    )
    assert done.result is None


def test_without_a_runner_the_task_says_so(services: Services) -> None:
    task, _ = services.lifecycle.submit(spec())
    run_all(services, NoRunner(), task.id)
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.FAILED
    assert done.reason is not None and done.reason.startswith("no runner configured")


def test_an_attempt_is_claimed_once(services: Services) -> None:
    task, _ = services.lifecycle.submit(spec())
    attempt_id = task.attempts[0].id
    claim = services.lifecycle.claims.claim(attempt_id, worker="w1")
    assert claim is not None and claim.runs == 1
    assert services.lifecycle.claims.claim(attempt_id, worker="w2") is None
    assert services.redis.hlen(JOBS_KEY) == 0
    assert services.lifecycle.get(task.id).state == TaskState.RUNNING


def test_a_silent_attempt_is_taken_over_and_the_old_holder_loses_its_lease(
    services: Services,
) -> None:
    task, _ = services.lifecycle.submit(spec())
    attempt_id = task.attempts[0].id
    old = services.lifecycle.claims.claim(attempt_id, worker="w1")
    assert old is not None
    with services.sessions.begin() as s:
        s.get_one(Attempt, attempt_id).heartbeat_at = s.get_one(
            Attempt, attempt_id
        ).heartbeat_at.replace(year=2000)  # type: ignore[union-attr]
    new = services.lifecycle.claims.claim(attempt_id, worker="w2")
    assert new is not None and new.runs == 2
    with pytest.raises(LeaseLost):
        services.lifecycle.claims.heartbeat(old)
    with pytest.raises(LeaseLost):
        services.lifecycle.claims.finish(
            old, AttemptState.SUCCEEDED, outcome=AttemptOutcome(verified=True)
        )
    services.lifecycle.claims.finish(
        new, AttemptState.SUCCEEDED, outcome=AttemptOutcome(summary="ok", verified=True)
    )
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED
    assert done.attempts[0].runs == 2 and done.attempts[0].worker == "w2"


def test_cancel_ends_queued_attempts_and_flags_running_ones(services: Services) -> None:
    task, _ = services.lifecycle.submit(spec(attempts=2))
    running = services.lifecycle.claims.claim(task.attempts[0].id, worker="w1")
    assert running is not None
    cancelled = services.lifecycle.cancel(task.id, by="alice")
    assert cancelled.state == TaskState.CANCELLED
    assert cancelled.reason == "cancelled by alice"
    assert [a.state for a in cancelled.attempts] == ["provisioning", "cancelled"]
    assert services.lifecycle.claims.heartbeat(running) is True
    services.lifecycle.claims.finish(
        running, AttemptState.CANCELLED, reason="the task was cancelled"
    )
    after = services.lifecycle.get(task.id)
    assert after.state == TaskState.CANCELLED
    assert [a.state for a in after.attempts] == ["cancelled", "cancelled"]
    assert services.lifecycle.claims.claim(task.attempts[1].id, worker="w2") is None
    assert [k for _, k in event_kinds(services, task.id)].count("task.finished") == 1


def test_cancel_of_an_ended_task_changes_nothing(services: Services) -> None:
    task, _ = services.lifecycle.submit(spec())
    run_all(services, ScriptedRunner(), task.id)
    again = services.lifecycle.cancel(task.id)
    assert again.state == TaskState.SUCCEEDED
    assert again.reason == "kept attempt 1 of 1"


def test_a_task_ends_on_one_read_of_its_row_and_its_last_event_says_how(
    services: Services,
) -> None:
    # Each task of a drain pays for every round trip of its end: the row is read once.
    task, _ = services.lifecycle.submit(spec(instruction="end me"))
    claims = services.lifecycle.claims
    claim = claims.claim(task.attempts[0].id, worker="test-worker")
    assert claim is not None
    outcome = AttemptOutcome(summary="done", diff="a\n", verified=True)
    claims.record_end(claim, AttemptState.SUCCEEDED, outcome=outcome)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(services.engine, "before_cursor_execute", seen)
    try:
        assert services.lifecycle.finalize(task.id) is True
    finally:
        event.remove(services.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.startswith("SELECT") and "FROM tasks" in s]
    assert len(reads) == 1, reads
    done = services.lifecycle.get(task.id)
    assert done.state == TaskState.SUCCEEDED
    assert done.result is not None and done.result.diff == "a\n"
    with services.sessions() as session:
        result_id = session.get_one(Task, task.id).result_id
        last = session.scalars(
            select(Event).where(Event.task_id == task.id).order_by(Event.seq.desc())
        ).first()
    assert result_id is not None
    assert last is not None and last.kind == "task.finished"
    assert last.data == {"state": "succeeded", "reason": done.reason, "result_id": result_id}
    # Ended once: a second call changes nothing and says so.
    assert services.lifecycle.finalize(task.id) is False
