"""Choosing between attempts by their verdicts, and the end state that tells the truth; the
baselines table that every worker shares. SQLite and PostgreSQL both."""

from __future__ import annotations

import json
from typing import Any

from agent.baseline import Baseline
from agent.testresults import TestReport
from orchestrator.baselines import StoreBaselines
from orchestrator.executor import AttemptExecutor
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import TaskState
from tests.orchestrator.runners import ScriptedRunner


def verdict(
    *,
    fixed: int = 0,
    broke: int = 0,
    vanished: int = 0,
    harness: list[str] | None = None,
    verified: bool = False,
) -> dict[str, Any]:
    """A verdict as agent.verify.Verdict.to_json makes it."""
    names = {
        "fixed": [f"t::fixed{i}" for i in range(fixed)],
        "broke": [f"t::broke{i}" for i in range(broke)],
        "vanished": [f"t::gone{i}" for i in range(vanished)],
        "still_failing": [], "added": [], "flaky": [], "harness": harness or [],
    }  # fmt: skip
    counts = {k: len(v) for k, v in names.items()} | {"still_passing": 3}
    return {**names, "counts": counts, "verified": verified, "regressions": broke + vanished}


def ended(services: Services, attempts: dict[int, dict[str, Any]]) -> TaskView:
    """A task whose attempts (numbered from 1) ended with these scripted outcomes."""
    script = json.dumps({"by_attempt": {str(n): o for n, o in attempts.items()}})
    spec = TaskSpec(repo="/srv/repo.git", instruction=script, attempts=len(attempts))
    task, _ = services.lifecycle.submit(spec)
    executor = AttemptExecutor(services.lifecycle, ScriptedRunner(), "test-worker")  # type: ignore[arg-type]
    for attempt in task.attempts:
        executor.execute(attempt.id)
    return services.lifecycle.get(task.id)


def kept(task: TaskView) -> int:
    assert task.result is not None
    return next(a.number for a in task.attempts if a.id == task.result.attempt_id)


def test_verified_beats_a_smaller_unverified_diff(services: Services) -> None:
    task = ended(
        services,
        {
            1: {"diff": "a\n", "verified": False, "tests": verdict()},
            2: {"diff": "a\nb\nc\n", "verified": True, "tests": verdict(fixed=1, verified=True)},
        },
    )
    assert (task.state, task.reason, kept(task)) == (TaskState.SUCCEEDED, "kept attempt 2 of 2", 2)
    assert [a.verdict for a in task.attempts] == ["unverified", "verified"]


def test_among_unverified_no_regressions_then_most_fixed_then_no_harness_then_smaller(
    services: Services,
) -> None:
    outcome = "unverified: ..."
    common = {"verified": False, "tests_outcome": outcome}
    task = ended(
        services,
        {
            1: {**common, "diff": "a\n", "tests": verdict(fixed=2, broke=1)},
            2: {**common, "diff": "a\nb\n", "tests": verdict(fixed=1, vanished=1)},
            3: {**common, "diff": "a\nb\nc\n", "tests": verdict(fixed=1)},
            4: {
                **common,
                "diff": "a\nb\nc\nd\n",
                "tests": verdict(fixed=2, harness=["conftest.py"]),
            },
            5: {**common, "diff": "a\nb\nc\nd\ne\n", "tests": verdict(fixed=2)},
            6: {**common, "diff": "a\nb\nc\nd\ne\nf\n", "tests": verdict(fixed=2)},
        },
    )
    assert task.state == TaskState.UNVERIFIED
    assert task.reason == f"no attempt verified; kept attempt 5 of 6: {outcome}"
    assert kept(task) == 5 and task.result is not None and task.result.diff == "a\nb\nc\nd\ne\n"
    assert task.result.tests is not None and task.result.tests["counts"]["fixed"] == 2
    assert {a.verdict for a in task.attempts} == {"unverified"}


def test_between_two_verified_the_one_that_left_the_harness_alone_wins(services: Services) -> None:
    task = ended(
        services,
        {
            1: {"diff": "a\n", "tests": verdict(fixed=1, harness=["pytest.ini"], verified=True)},
            2: {"diff": "a\nb\n", "tests": verdict(fixed=1, verified=True)},
        },
    )
    assert (task.state, kept(task)) == (TaskState.SUCCEEDED, 2)


def test_no_tests_found_ends_unverified_and_a_failed_attempt_does_not_hide_it(
    services: Services,
) -> None:
    task = ended(
        services,
        {
            1: {"diff": "a\n", "verified": False, "tests_outcome": "no tests found"},
            2: {"fail": "step budget of 2 model calls spent (budget:steps)"},
        },
    )
    assert task.state == TaskState.UNVERIFIED
    assert task.reason == "no tests found: nothing could verify the change; kept attempt 1 of 2"
    assert [a.verdict for a in task.attempts] == ["unverified", "failed"]


def test_an_unverified_task_is_terminal_and_listed_by_its_state(services: Services) -> None:
    task = ended(services, {1: {"diff": "a\n", "verified": False}})
    assert task.state.terminal and task.finished_at is not None
    from orchestrator import store

    with services.sessions() as session:
        assert store.count_tasks_by_state(session) == {"unverified": 1}


def test_baselines_are_kept_once_per_key_and_read_back_whole(services: Services) -> None:
    cache = StoreBaselines(services.sessions)
    assert cache.get("k") is None
    first = Baseline(TestReport("pytest", 1, {"t::a": "passed", "t::b": "failed"}, 1, 1), ("t::c",))
    cache.put("k", first)
    again = Baseline(TestReport("pytest", 0, {"t::a": "passed"}, 1, 0))
    cache.put("k", again)  # another worker on the same commit, later: the first stays
    got = cache.get("k")
    assert got is not None
    assert got.report.tests == {"t::a": "passed", "t::b": "failed"}
    assert (got.report.exit_code, got.report.passed, got.report.failed) == (1, 1, 1)
    assert got.flaky == ("t::c",) and got.report.output == ""
