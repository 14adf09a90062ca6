"""How a task ends from its attempts: its state, its reason, and the result it keeps."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.models import Attempt, Result
from orchestrator.states import AttemptState, TaskState

NO_TESTS = "no tests found"


def rank(result: Result) -> tuple[int, int, int, int, int, str]:
    """Verified first; then no regressions; then most tests fixed; then no test or harness
    files changed; then the smaller diff. The attempt id only makes the order total."""
    tests = result.tests or {}
    counts = tests.get("counts", {})
    regressed = bool(tests.get("regressions") or counts.get("broke"))
    return (
        0 if result.verified else 1,
        int(regressed),
        -int(counts.get("fixed", 0)),
        int(bool(counts.get("harness"))),
        result.diff_lines,
        result.attempt_id,
    )


def choose_result(attempts: Sequence[Attempt]) -> Result | None:
    results = [a.result for a in attempts if a.state == AttemptState.SUCCEEDED and a.result]
    return min(results, key=rank, default=None)


def verified_ranked(attempts: Sequence[Attempt]) -> list[Result]:
    """The verified results, best first: what the model's review chooses between."""
    results = [a.result for a in attempts if a.state == AttemptState.SUCCEEDED and a.result]
    return sorted((r for r in results if r.verified), key=rank)


def task_ending(
    attempts: Sequence[Attempt], kept: Result | None = None
) -> tuple[TaskState, str | None]:
    """The task's final state once every attempt has ended: `succeeded` only when the result
    it keeps is verified, `unverified` when attempts finished but none verified. `kept`: the
    result the review picked, instead of the ranking's."""
    states = [AttemptState(a.state) for a in attempts]
    kept = kept or choose_result(attempts)
    if kept is not None:
        which = f"kept attempt {kept.attempt.number} of {len(attempts)}"
        if kept.verified:
            return TaskState.SUCCEEDED, which
        if kept.tests_outcome == NO_TESTS:
            return TaskState.UNVERIFIED, f"{NO_TESTS}: nothing could verify the change; {which}"
        return TaskState.UNVERIFIED, f"no attempt verified; {which}: {kept.tests_outcome}"
    if all(s == AttemptState.CANCELLED for s in states):
        return TaskState.CANCELLED, attempts[0].reason
    if all(s == AttemptState.TIMED_OUT for s in states):
        return TaskState.TIMED_OUT, _reasons(attempts)
    return TaskState.FAILED, _reasons(attempts)


def _reasons(attempts: Sequence[Attempt]) -> str:
    if len(attempts) == 1:
        return attempts[0].reason or attempts[0].state
    # By number: the store returns a task's attempts in no set order (PostgreSQL varies).
    ordered = sorted(attempts, key=lambda a: a.number)
    return "; ".join(f"attempt {a.number}: {a.reason or a.state}" for a in ordered)
