"""How a task ends from its attempts: its state, its reason, and the result it keeps."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.models import Attempt, Result
from orchestrator.states import AttemptState, TaskState


def _rank(result: Result) -> tuple[int, int, str]:
    # Verified first, then unverified (no tests to run), then failed verification;
    # within each, the smallest diff; the attempt id only makes the order total.
    verified = {True: 0, None: 1, False: 2}[result.verified]
    return verified, result.diff_lines, result.attempt_id


def choose_result(attempts: Sequence[Attempt]) -> Result | None:
    results = [a.result for a in attempts if a.state == AttemptState.SUCCEEDED and a.result]
    return min(results, key=_rank, default=None)


def task_ending(attempts: Sequence[Attempt]) -> tuple[TaskState, str | None]:
    """The task's final state once every attempt has ended."""
    states = [AttemptState(a.state) for a in attempts]
    kept = choose_result(attempts)
    if kept is not None:
        return TaskState.SUCCEEDED, f"kept attempt {kept.attempt.number} of {len(attempts)}"
    if all(s == AttemptState.CANCELLED for s in states):
        return TaskState.CANCELLED, attempts[0].reason
    if all(s == AttemptState.TIMED_OUT for s in states):
        return TaskState.TIMED_OUT, _reasons(attempts)
    return TaskState.FAILED, _reasons(attempts)


def _reasons(attempts: Sequence[Attempt]) -> str:
    if len(attempts) == 1:
        return attempts[0].reason or attempts[0].state
    return "; ".join(f"attempt {a.number}: {a.reason or a.state}" for a in attempts)
