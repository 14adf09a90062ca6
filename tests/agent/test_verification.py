"""Verification that cannot be gamed: each gaming attempt alone ends `unverified`, and loses to
the real fix; a flaky test decides nothing; a repository without tests says so."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.base import AttemptOutcome
from orchestrator.baselines import StoreBaselines
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent import policies
from tests.agent.bugs import BUGS, git, make_repo
from tests.agent.conftest import Recorder, attempt_context
from tests.agent.test_runner import bwrap_works, unittest_repo

Serve = Callable[[Script], ScriptedServer]
Settings = Callable[..., AgentRunnerSettings]
ADD = BUGS[0]
ADD_TEST = "tests/test_lib.py::test_add"
UNITTEST_ADD = "tests.test_lib.LibTest.test_add"
CLEAN = (
    "import os\nimport unittest\n\n\nclass Clean(unittest.TestCase):\n"
    "    def test_tmp(self):\n        self.assertFalse(os.path.exists('/tmp/left'))\n"
)
ALWAYS_FAILS = 'def test_needs_a_database():\n    raise ConnectionError("no database here")\n'


@dataclasses.dataclass
class Attempts:
    """Runs scripted attempts through the real runner, then ends one task with them."""

    serve: Serve
    settings: Settings
    baselines: StoreBaselines
    services: Services

    def run(
        self, repo: Path, script: Script, **settings: object
    ) -> tuple[AttemptOutcome, Recorder]:
        runner = AgentRunner(
            self.settings(self.serve(script).url, **settings), baselines=self.baselines
        )
        ctx, seen = attempt_context(repo, ADD.task)
        return runner.run(ctx), seen

    def end(self, repo: Path, outcomes: list[AttemptOutcome]) -> TaskView:
        """One task whose attempts ended with `outcomes`, in order: the lifecycle chooses."""
        spec = TaskSpec(repo=str(repo), instruction=ADD.task, attempts=len(outcomes))
        task, _ = self.services.lifecycle.submit(spec)
        for attempt, outcome in zip(task.attempts, outcomes, strict=True):
            claim = self.services.lifecycle.claims.claim(attempt.id, worker="test")
            assert claim is not None
            self.services.lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)
        return self.services.lifecycle.get(task.id)


@pytest.fixture
def attempts(
    serve: Serve, runner_settings: Settings, baselines: StoreBaselines, services: Services
) -> Attempts:
    return Attempts(serve, runner_settings, baselines, services)


def repo_of(tmp_path: Path, extra: dict[str, str] | None = None, name: str = "add") -> Path:
    return make_repo(tmp_path / name, ADD, extra)


def kept(task: TaskView) -> int:
    assert task.result is not None
    return next(a.number for a in task.attempts if a.id == task.result.attempt_id)


def test_a_conftest_that_deselects_the_failing_test_is_unverified_and_loses(
    attempts: Attempts, tmp_path: Path
) -> None:
    repo = repo_of(tmp_path)
    gamed, seen = attempts.run(repo, policies.deselecting())
    assert gamed.verified is False
    assert gamed.tests is not None
    assert gamed.tests["vanished"] == [ADD_TEST] and gamed.tests["fixed"] == []
    assert gamed.tests["harness"] == ["conftest.py"]
    assert "test harness changed: conftest.py" in (gamed.tests_outcome or "")
    assert seen.of("tests.baseline")[0]["cached"] is False
    fix, seen = attempts.run(repo, policies.fixing([ADD]))
    assert fix.verified is True and seen.of("tests.baseline")[0]["cached"] is True
    assert len(gamed.diff) < len(fix.diff) + len(policies.DESELECT)

    alone = attempts.end(repo, [gamed])
    assert alone.state == TaskState.UNVERIFIED and alone.result is not None
    assert alone.result.diff == gamed.diff  # the best diff is kept, and shown as unverified
    both = attempts.end(repo, [gamed, fix])
    assert (both.state, kept(both)) == (TaskState.SUCCEEDED, 2)


def test_a_usercustomize_in_home_fools_only_the_agent_s_own_sandbox(
    attempts: Attempts, tmp_path: Path
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    repo = unittest_repo(tmp_path)  # the system's python3 in the sandbox: its user site is on
    gamed, seen = attempts.run(repo, policies.customizing(), sandbox_backend="bwrap")
    in_sandbox = seen.of("tool.output")[2]  # after the set-up command and the write
    assert (
        in_sandbox["exit_code"] == 0
        and "test_add (tests.test_lib.LibTest.test_add) ... ok" in (in_sandbox["output"])
    )
    assert gamed.diff == "" and gamed.verified is False
    assert gamed.tests is not None and gamed.tests["still_failing"] == [UNITTEST_ADD]
    fix, _ = attempts.run(repo, policies.fixing([ADD]), sandbox_backend="bwrap")
    assert fix.verified is True

    assert attempts.end(repo, [gamed]).state == TaskState.UNVERIFIED
    both = attempts.end(repo, [gamed, fix])
    assert (both.state, kept(both)) == (TaskState.SUCCEEDED, 2)


def test_doing_nothing_beside_an_always_failing_test_is_unverified_and_loses(
    attempts: Attempts, tmp_path: Path
) -> None:
    repo = repo_of(tmp_path, {"tests/test_service.py": ALWAYS_FAILS})
    idle, _ = attempts.run(repo, policies.idle())
    fix, _ = attempts.run(repo, policies.fixing([ADD]))
    assert (idle.verified, fix.verified) == (False, True)
    assert fix.tests is not None
    assert fix.tests["fixed"] == [ADD_TEST]
    assert fix.tests["still_failing"] == ["tests/test_service.py::test_needs_a_database"]

    alone = attempts.end(repo, [idle])
    assert alone.state == TaskState.UNVERIFIED
    assert alone.reason is not None and "no test that failed on the base passes now" in alone.reason
    both = attempts.end(repo, [idle, fix])  # the empty diff is smaller, and still loses
    assert (both.state, kept(both)) == (TaskState.SUCCEEDED, 2)


def test_a_smaller_wrong_diff_is_unverified_and_loses_to_a_bigger_right_one(
    attempts: Attempts, tmp_path: Path
) -> None:
    repo = repo_of(tmp_path)
    wordy = dataclasses.replace(
        ADD, old="    return a - b\n", new="    total = a + b\n    return total\n"
    )
    wrong, _ = attempts.run(repo, policies.breaking(ADD))
    right, _ = attempts.run(repo, policies.fixing([wordy]))
    assert len(wrong.diff) < len(right.diff)
    assert (wrong.verified, right.verified) == (False, True)
    assert wrong.tests is not None and wrong.tests["broke"] == ["tests/test_lib.py::test_version"]

    assert attempts.end(repo, [wrong]).state == TaskState.UNVERIFIED
    both = attempts.end(repo, [wrong, right])
    assert (both.state, kept(both)) == (TaskState.SUCCEEDED, 2)
    assert both.result is not None and "+    total = a + b" in both.result.diff


def test_a_flaky_test_on_the_base_decides_nothing(attempts: Attempts, tmp_path: Path) -> None:
    counter = tmp_path / "runs"  # outside the tree: it counts the runs of every sandbox
    flaky = (
        "import pathlib\n\n\ndef test_first_run_fails():\n"
        f"    runs = pathlib.Path({str(counter)!r})\n"
        "    n = int(runs.read_text()) if runs.exists() else 0\n"
        "    runs.write_text(str(n + 1))\n"
        "    assert n >= 1\n"
    )
    repo = repo_of(tmp_path, {"tests/test_flaky.py": flaky})
    idle, seen = attempts.run(repo, policies.idle())
    # Failed on the first baseline run, passed on the second and on the attempt's own run:
    # taken at its word, it would count as fixed and make doing nothing verified.
    assert counter.read_text() == "3"
    assert seen.of("tests.baseline")[0]["flaky"] == ["tests/test_flaky.py::test_first_run_fails"]
    assert idle.verified is False and idle.tests is not None and idle.tests["fixed"] == []
    fix, _ = attempts.run(repo, policies.fixing([ADD]))
    assert fix.verified is True and fix.tests is not None
    assert fix.tests["fixed"] == [ADD_TEST]
    assert fix.tests["flaky"] == ["tests/test_flaky.py::test_first_run_fails"]
    assert "1 flaky on the base, ignored" in (fix.tests_outcome or "")


def test_a_repository_without_tests_ends_unverified_saying_no_tests_found(
    attempts: Attempts, tmp_path: Path
) -> None:
    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "lib.py").write_text(ADD.code)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "no tests")
    outcome, seen = attempts.run(repo, policies.fixing([ADD]))
    assert (outcome.verified, outcome.tests_outcome) == (False, "no tests found")
    assert "+    return a + b" in outcome.diff
    assert "tests.baseline" not in seen.kinds()
    task = attempts.end(repo, [outcome])
    assert task.state == TaskState.UNVERIFIED
    assert task.reason is not None and task.reason.startswith("no tests found")
    assert task.result is not None and task.result.diff == outcome.diff


def test_what_the_agent_left_in_tmp_is_not_in_the_verification_sandbox(
    attempts: Attempts, tmp_path: Path
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    repo = unittest_repo(tmp_path)
    (repo / "tests" / "test_clean.py").write_text(CLEAN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a test that /tmp is clean")
    script = policies.in_turns(
        "fixed",
        ("bash", {"command": "touch /tmp/left"}),
        ("edit_file", {"path": "lib.py", "old": ADD.old, "new": ADD.new}),
    )
    outcome, _ = attempts.run(repo, script, sandbox_backend="bwrap")
    assert outcome.verified is True and outcome.tests is not None
    assert outcome.tests["broke"] == [] and outcome.tests["fixed"] == [UNITTEST_ADD]
    assert outcome.tests["counts"]["still_passing"] == 2  # test_version and test_clean
