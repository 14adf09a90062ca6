"""`autan continue` against the live API: a finished task is continued from its kept attempt
or the one named; a running task, an unknown attempt and one without a diff fail with one
line saying why, and make no task."""

from __future__ import annotations

from sqlalchemy import func, select

from orchestrator.base import AttemptOutcome
from orchestrator.models import Task
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.cli.conftest import Autan


def test_continue_makes_a_linked_task_and_refuses_what_cannot_be_continued(
    autan: Autan, services: Services
) -> None:
    lifecycle = services.lifecycle
    task, _ = lifecycle.submit(TaskSpec(repo="/r", instruction="start", attempts=2))
    running = autan("continue", task.id, "more")
    assert running.returncode == 1
    assert running.stderr.startswith(f"error: task {task.id} has not finished (queued)")
    assert running.stderr.endswith("; `autan say` tells a running task something\n")
    for attempt in task.attempts:
        claim = lifecycle.claims.claim(attempt.id, worker="w1")
        assert claim is not None
        diff = "+kept\n" if attempt.number == 1 else ""
        outcome = AttemptOutcome(diff=diff, verified=attempt.number == 1)
        lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)

    made = autan("continue", task.id, "now the tests")
    assert (made.returncode, made.stderr) == (0, ""), made.stderr
    later_id = made.stdout.split()[1]
    assert made.stdout == f"task {later_id} continues task {task.id} from attempt 1\n"
    later = lifecycle.get(later_id)
    assert (later.instruction, later.start_patch, later.retry_of) == (
        "now the tests",
        "+kept\n",
        None,
    )
    assert later.origin.kind == "cli"

    no_diff = autan("continue", task.id, "x", "--attempt", "2")
    assert no_diff.returncode == 1
    assert no_diff.stderr.endswith(f"attempt 2 of task {task.id} left no diff to continue from\n")
    missing = autan("continue", task.id, "x", "--attempt", "3")
    assert missing.returncode == 1
    assert missing.stderr.endswith(f"task {task.id} has no attempt 3\n")
    nobody = autan("continue", "nope", "x")
    assert (nobody.returncode, nobody.stderr) == (1, "error: no task with id nope\n")
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 2
