"""The runner end to end in a bubblewrap sandbox; verification's detection and counting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.repo import RepoInfo, parse_autan_toml
from agent.testresults import read_report
from agent.verify import find_test_command
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.base import AttemptFailed
from orchestrator.baselines import StoreBaselines
from sandbox import SandboxConfig, SandboxError, create_sandbox
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent import policies
from tests.agent.bugs import BUGS, git
from tests.agent.conftest import attempt_context

UNITTEST = """import unittest

import lib


class LibTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(lib.add(2, 3), 5)

    def test_version(self):
        self.assertEqual(lib.version(), "1.0")
"""
AUTAN_TOML = """[test]
command = "python3 -m unittest discover -s tests -t . -v"

[setup]
commands = ["echo prepared > /tmp/prepared"]
"""


def unittest_repo(root: Path) -> Path:
    repo = root / "unit"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "lib.py").write_text(BUGS[0].code + '\n\ndef version():\n    return "1.0"\n')
    (repo / "tests" / "test_lib.py").write_text(UNITTEST)
    (repo / ".autan.toml").write_text(AUTAN_TOML)
    (repo / "AGENTS.md").write_text("Run the tests with unittest.\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "unit")
    return repo


def bwrap_works(tmp_path: Path) -> str | None:
    try:
        sbx = create_sandbox(tmp_path, SandboxConfig(backend="bwrap", root=tmp_path / "probe"))
    except SandboxError as exc:
        return str(exc)
    sbx.close()
    return None


def test_the_runner_fixes_a_repository_in_a_bwrap_sandbox(
    tmp_path: Path,
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
    baselines: StoreBaselines,
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    repo = unittest_repo(tmp_path)
    server = serve(policies.fixing([BUGS[0]]))
    settings = runner_settings(server.url, sandbox_backend="bwrap")
    runner = AgentRunner(settings, baselines=baselines)
    ctx, seen = attempt_context(repo, BUGS[0].task)
    outcome = runner.run(ctx)
    assert outcome.verified is True, seen.of("tests.finished")
    command = "python3 -m unittest discover -s tests -t . -v"
    assert outcome.tests_outcome == (
        f"verified: 1 fixed, 1 still passing, 0 broken, 0 vanished ({command}); "
        "fixes what failed on the base and breaks nothing"
    )
    assert outcome.tests is not None and outcome.tests["fixed"] == [
        "tests.test_lib.LibTest.test_add"
    ]
    assert outcome.diff.count("+++ b/lib.py") == 1 and "+    return a + b" in outcome.diff
    setup = seen.of("tool.output")[0]
    assert (setup["name"], setup["ok"], setup["exit_code"]) == ("setup", True, 0)
    system = server.requests[0]["messages"][0]["content"]
    assert "Run the tests with unittest." in system and "[setup]" in system
    assert "lib.py\ntests/__init__.py\ntests/test_lib.py" in system


def test_a_budget_ends_the_attempt_as_failed_with_its_reason(
    repos: dict[str, Path],
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
) -> None:
    server = serve(Script.model_validate({"fallback": {"content": "thinking"}}))
    settings = runner_settings(server.url, trajectory_dir=None)
    settings.agent.max_steps = 2
    ctx, seen = attempt_context(repos["add"], BUGS[0].task)
    runner = AgentRunner(settings)
    with pytest.raises(AttemptFailed, match=r"step budget of 2 model calls spent \(budget:steps\)"):
        runner.run(ctx)
    assert seen.kinds() == ["model.message", "model.message"] and seen.phases == []
    # The failed attempt's trajectory went to the shared store; no copy stays on the worker.
    stored = json.loads(b"".join(runner.storage.open_file("trajectories/a1.json")))
    assert stored["reason"] == "budget:steps" and stored["steps"] == 2
    assert not (settings.data_dir / "trajectories" / "a1.json").exists()


def test_a_missing_repository_fails_the_attempt_saying_so(
    tmp_path: Path, runner_settings: Callable[..., AgentRunnerSettings]
) -> None:
    ctx, _ = attempt_context(tmp_path / "nowhere", "x")
    with pytest.raises(AttemptFailed, match="the base tree could not be made"):
        AgentRunner(runner_settings("http://127.0.0.1:9/v1")).run(ctx)


def info(files: list[str], toml: str = "") -> RepoInfo:
    return RepoInfo(files=files, autan=parse_autan_toml(toml))


def test_the_test_command_is_found_from_autan_toml_then_the_files() -> None:
    assert find_test_command(info(["a.py"], '[test]\ncommand = "make check"')) == "make check"
    assert find_test_command(info(["src/a.py", "tests/test_a.py"])) == "python -m pytest -q"
    assert find_test_command(info(["package.json", "go.mod"])) == "npm test"
    assert find_test_command(info(["go.mod"])) == "go test -v ./..."
    assert find_test_command(info(["Cargo.toml"])) == "cargo test"
    assert find_test_command(info(["Makefile"])) == "make test"
    assert find_test_command(info(["README.md"])) is None


@pytest.mark.parametrize(
    ("output", "counts"),
    [
        ("..F\n1 failed, 2 passed in 0.03s\n", (2, 1)),
        ("===== 3 passed, 1 skipped, 2 warnings in 1.20s =====\n", (3, 0)),
        ("== 1 passed, 1 error in 0.1s ==\n", (1, 1)),
        ("Ran 4 tests in 0.001s\n\nFAILED (failures=1, errors=1)\n", (2, 2)),
        ("Ran 3 tests in 0.001s\n\nOK\n", (3, 0)),
        ("test result: ok. 5 passed; 0 failed; 0 ignored\n", (5, 0)),
        ("--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n", (1, 1)),
        ("all good\n", (None, None)),
    ],
)
def test_pass_and_fail_counts_are_read_from_each_runner_s_summary(
    output: str, counts: tuple[int | None, int | None]
) -> None:
    report = read_report("t", 0, output)
    assert (report.passed, report.failed) == counts


def test_the_summary_names_what_the_diff_left_out(
    tmp_path: Path,
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
    baselines: StoreBaselines,
) -> None:
    if why := bwrap_works(tmp_path):
        pytest.skip(f"bwrap sandboxes cannot run here: {why}")
    repo = unittest_repo(tmp_path)
    hostile = "truncate -s 3G big.bin && mkdir -p sub/.GIT && echo x > sub/.GIT/config"
    (repo / ".autan.toml").write_text(AUTAN_TOML.replace("echo prepared > /tmp/prepared", hostile))
    git(repo, "commit", "-qam", "a set-up that leaves a sparse file and a .GIT behind")
    server = serve(policies.fixing([BUGS[0]]))
    runner = AgentRunner(runner_settings(server.url, sandbox_backend="bwrap"), baselines=baselines)
    ctx, _ = attempt_context(repo, BUGS[0].task)

    outcome = runner.run(ctx)

    assert outcome.summary.endswith(
        "\n\nLeft out of the diff (file too large: big.bin; git's own name: sub/.GIT)."
    )
    assert "file too large: big.bin (3221225472 bytes), not in this diff\n" in outcome.diff
    assert "+    return a + b" in outcome.diff and outcome.verified is True
