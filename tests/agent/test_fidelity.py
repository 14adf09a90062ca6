"""The fidelity suite: known fixes verify on every generated repository, doing nothing on none."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.baselines import StoreBaselines
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent import policies
from tests.agent.bugs import BUGS
from tests.agent.conftest import attempt_context
from tests.agent.workers import AgentWorkers
from tests.waiting import wait_until

Serve = Callable[[Script], ScriptedServer]
Settings = Callable[..., AgentRunnerSettings]


FIXED = (
    "verified: 1 fixed, 1 still passing, 0 broken, 0 vanished (python -m pytest -q); "
    "fixes what failed on the base and breaks nothing"
)


def test_the_known_fix_verifies_on_every_repository(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    tmp_path: Path,
    baselines: StoreBaselines,
) -> None:
    assert len(BUGS) >= 10
    server = serve(policies.fixing(BUGS))
    runner = AgentRunner(runner_settings(server.url), baselines=baselines)
    for bug in BUGS:
        ctx, seen = attempt_context(repos[bug.name], bug.task)
        outcome = runner.run(ctx)
        assert outcome.verified is True, (bug.name, outcome.tests_outcome)
        assert outcome.tests_outcome == FIXED, bug.name
        assert outcome.tests is not None
        assert outcome.tests["fixed"] == [f"tests/test_lib.py::test_{bug.name}"]
        assert outcome.tests["broke"] == outcome.tests["vanished"] == []
        assert outcome.summary == f"fixed {bug.name}"
        lines = outcome.diff.splitlines()
        assert any(line.startswith("-") and bug.old.strip() in line for line in lines)
        assert any(line.startswith("+") and bug.new.strip() in line for line in lines)
        assert "+++ b/lib.py" in outcome.diff and outcome.diff.count("+++ ") == 1
        assert outcome.tokens_in > 0 and outcome.tokens_out > 0 and outcome.cost_usd == 0
        assert seen.phases == ["verifying"]
        assert seen.kinds() == [
            "model.message", "tool.call", "tool.output", "file.change",
            "model.message", "tool.call", "tests.baseline", "tests.finished",
        ]  # fmt: skip
        assert seen.of("file.change") == [{"path": "lib.py", "status": "modified"}]
        saved = json.loads((tmp_path / "trajectories" / "a1.json").read_text())
        assert saved["reason"] == "finished" and saved["steps"] == 2
        assert json.loads(b"".join(runner.storage.open_file("trajectories/a1.json"))) == saved
    assert len(server.requests) == 2 * len(BUGS)


def test_doing_nothing_verifies_on_no_repository(
    repos: dict[str, Path], serve: Serve, runner_settings: Settings, baselines: StoreBaselines
) -> None:
    runner = AgentRunner(runner_settings(serve(policies.idle()).url), baselines=baselines)
    for bug in BUGS:
        ctx, seen = attempt_context(repos[bug.name], bug.task)
        outcome = runner.run(ctx)
        assert outcome.verified is False, bug.name
        assert outcome.tests_outcome == (
            "unverified: 0 fixed, 1 still passing, 0 broken, 0 vanished (python -m pytest -q); "
            "no test that failed on the base passes now"
        )
        assert outcome.diff == "" and outcome.summary == "nothing to do"
        tests = seen.of("tests.finished")[0]
        assert tests["still_failing"] == [f"tests/test_lib.py::test_{bug.name}"]
        assert f"test_{bug.name}" in tests["output"]


def test_best_of_two_keeps_the_correct_attempt_over_a_smaller_breaking_one(
    repos: dict[str, Path], serve: Serve, services: Services, agent_workers: AgentWorkers
) -> None:
    bug = BUGS[0]  # add: `a - b`
    wordy = dataclasses.replace(
        bug, old="    return a - b\n", new="    total = a + b\n    return total\n"
    )
    good, bad = serve(policies.fixing([wordy])), serve(policies.breaking(bug))
    agent_workers.start(f"{good.url},{bad.url}", concurrency=2)
    spec = TaskSpec(repo=str(repos[bug.name]), instruction=bug.task, attempts=2)
    task_id = services.lifecycle.submit(spec)[0].id

    def ended() -> bool:
        return services.lifecycle.get(task_id).state.terminal

    wait_until(ended, timeout=90, what="the task to end")
    task = services.lifecycle.get(task_id)
    assert task.state == TaskState.SUCCEEDED, agent_workers.output()
    by_number = {a.number: a for a in task.attempts}
    assert [by_number[n].state for n in (1, 2)] == [AttemptState.SUCCEEDED] * 2
    first, second = by_number[1].result, by_number[2].result
    assert first is not None and second is not None
    assert (first.verified, second.verified) == (True, False)
    assert second.diff_lines < first.diff_lines  # the breaking one is smaller, and still loses
    assert second.tests is not None and second.tests["broke"] == ["tests/test_lib.py::test_version"]
    assert task.result is not None and task.result.attempt_id == by_number[1].id
    assert "+    total = a + b" in task.result.diff
    assert len(good.requests) == 2 and len(bad.requests) == 2
