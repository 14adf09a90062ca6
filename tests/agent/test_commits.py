"""The tested commit and kept partial work, through real workers and the store on SQLite and
PostgreSQL: a repository that moves on, refs by branch and hash, a missing ref, a budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import store
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent import policies
from tests.agent.bugs import BUGS, git, make_repo
from tests.agent.workers import AgentWorkers
from tests.services import PostgresDatabases
from tests.waiting import wait_until

Serve = Callable[[Script], ScriptedServer]
PRICED = "mistralai/Mistral-Medium-3.5"
"""A model name with a price, so that attempts cost something."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both stores: the commit and the partial results are new columns."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'autan.db'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    url = databases.create()
    yield url
    databases.drop(url)


def run_task(services: Services, spec: TaskSpec, workers: AgentWorkers) -> TaskView:
    task_id = services.lifecycle.submit(spec)[0].id
    wait_until(
        lambda: services.lifecycle.get(task_id).state.terminal,
        timeout=90,
        what=f"the task to end\n{workers.output()}",
    )
    return services.lifecycle.get(task_id)


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref).strip()


@pytest.mark.slow
# Four tasks end to end: on SQLite only. The same columns on PostgreSQL: the tests below.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_task_works_on_the_commit_its_ref_names_when_it_starts_and_records_it(
    tmp_path: Path, serve: Serve, services: Services, agent_workers: AgentWorkers
) -> None:
    bug = BUGS[0]
    repo = make_repo(tmp_path / "remote", bug)
    agent_workers.start(serve(policies.fixing([bug])).url, concurrency=2)
    v1 = head(repo)

    first = run_task(services, TaskSpec(repo=str(repo), instruction=bug.task), agent_workers)
    assert first.state == TaskState.SUCCEEDED, first.reason
    assert first.ref is None and first.commit == v1
    assert [a.commit for a in first.attempts] == [v1]

    # The repository moves on: the next task sees it.
    lib = repo / "lib.py"
    lib.write_text("# v2\n" + lib.read_text())
    git(repo, "commit", "-qam", "v2")
    v2 = head(repo)
    task = run_task(services, TaskSpec(repo=str(repo), instruction=bug.task), agent_workers)
    assert task.state == TaskState.SUCCEEDED, task.reason
    assert (task.commit, [a.commit for a in task.attempts]) == (v2, [v2])
    assert task.result is not None and " # v2\n" in task.result.diff  # what the agent saw

    # An abbreviated hash names an older commit: every attempt works on it.
    old = run_task(
        services,
        TaskSpec(repo=str(repo), instruction=bug.task, ref=v1[:8], attempts=2),
        agent_workers,
    )
    assert old.state == TaskState.SUCCEEDED, old.reason
    assert (old.commit, [a.commit for a in old.attempts]) == (v1, [v1, v1])
    assert old.result is not None and "# v2" not in old.result.diff

    # A branch by name (full hashes: tests/sandbox/test_trees.py).
    git(repo, "checkout", "-qb", "feature")
    lib.write_text("# feature\n" + lib.read_text())
    git(repo, "commit", "-qam", "feature")
    feature = head(repo)
    git(repo, "checkout", "-q", "main")
    branch = run_task(
        services, TaskSpec(repo=str(repo), instruction=bug.task, ref="feature"), agent_workers
    )
    assert (branch.state, branch.commit) == (TaskState.SUCCEEDED, feature)
    assert branch.result is not None and " # feature\n" in branch.result.diff


def test_a_ref_the_repository_lacks_fails_the_task_saying_which(
    tmp_path: Path, serve: Serve, services: Services, agent_workers: AgentWorkers
) -> None:
    bug = BUGS[0]
    repo = make_repo(tmp_path / "remote", bug)
    server = serve(policies.fixing([bug]))
    agent_workers.start(server.url)
    for ref in ("no-such-branch", "0" * 40):
        spec = TaskSpec(repo=str(repo), instruction=bug.task, ref=ref)
        task = run_task(services, spec, agent_workers)
        assert task.state == TaskState.FAILED
        assert task.reason == f"ref {ref!r} not found in {repo}"
        assert task.commit is None and [a.commit for a in task.attempts] == [None]
        assert [a.state for a in task.attempts] == [AttemptState.FAILED]
        assert task.attempts[0].result is None and task.cost_usd == 0
    assert server.requests == []  # the model was never asked


def test_attempts_ended_by_their_step_budget_keep_their_diff_tokens_and_cost(
    tmp_path: Path, serve: Serve, services: Services, agent_workers: AgentWorkers
) -> None:
    bug = BUGS[0]
    repo = make_repo(tmp_path / "remote", bug)
    edit = {"path": "lib.py", "old": bug.old, "new": bug.new}
    script = {
        "model": PRICED,
        "rules": [policies.rule({"turn": 0}, ("edit_file", edit))],
        "fallback": {"tool_calls": [{"name": "read_file", "arguments": {"path": "lib.py"}}]},
    }
    server = serve(Script.model_validate(script))
    agent_workers.runner_env.update({"AUTAN_MODEL_NAME": PRICED, "AUTAN_AGENT__MAX_STEPS": "3"})
    agent_workers.start(server.url, concurrency=2)

    spec = TaskSpec(repo=str(repo), instruction=bug.task, attempts=2)
    task = run_task(services, spec, agent_workers)

    assert task.state == TaskState.FAILED
    assert [a.state for a in task.attempts] == [AttemptState.FAILED] * 2
    for attempt in task.attempts:
        assert attempt.reason == "step budget of 3 model calls spent (budget:steps)"
        result = attempt.result
        assert result is not None and result.partial is True
        assert f"-    return {bug.old}\n+    return {bug.new}\n" in result.diff
        assert result.diff_lines == result.diff.count("\n") > 0
        assert result.tokens_in > 0 and result.tokens_out > 0 and result.cost_usd > 0
    costs = [a.result.cost_usd for a in task.attempts if a.result]
    assert task.cost_usd == pytest.approx(sum(costs)) and len(server.requests) == 6


def test_a_cancelled_attempt_keeps_its_work_so_far(
    tmp_path: Path, serve: Serve, services: Services, agent_workers: AgentWorkers
) -> None:
    bug = BUGS[0]
    repo = make_repo(tmp_path / "remote", bug)
    edit = {"path": "lib.py", "old": bug.old, "new": bug.new}
    script = {
        "model": PRICED,
        "rules": [policies.rule({"turn": 0}, ("edit_file", edit))],
        "fallback": {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 600"}}]},
    }
    agent_workers.runner_env["AUTAN_MODEL_NAME"] = PRICED
    agent_workers.start(serve(Script.model_validate(script)).url)
    task_id = services.lifecycle.submit(TaskSpec(repo=str(repo), instruction=bug.task))[0].id

    def sleeping() -> bool:
        with services.sessions() as session:
            calls = store.events_after(session, task_id=task_id, seq=0, kind="tool.call")
            return any("sleep 600" in str(e.data.get("arguments")) for e in calls)

    wait_until(sleeping, timeout=60, what=f"the agent to sleep\n{agent_workers.output()}")
    services.lifecycle.cancel(task_id)
    wait_until(
        lambda: all(a.state.terminal for a in services.lifecycle.get(task_id).attempts),
        timeout=60,
        what="the attempt to stop",
    )
    task = services.lifecycle.get(task_id)
    assert task.state == TaskState.CANCELLED
    (attempt,) = task.attempts
    assert attempt.state == AttemptState.CANCELLED and attempt.result is not None
    assert attempt.result.partial is True and f"+    return {bug.new}\n" in attempt.result.diff
    assert attempt.result.tokens_in > 0 and attempt.result.cost_usd > 0
    assert task.cost_usd == attempt.result.cost_usd
