"""Verification: find the repository's test command, run it in the sandbox, count the results."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from agent.repo import RepoInfo
from sandbox.base import Sandbox

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
_PYTEST_LINE = re.compile(
    r"^=*\s*(?:\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)"
    r"(?:, )?)+ in [\d.]+s.*$",
    re.M,
)
"""pytest's last line: `2 passed in 0.01s` with -q, framed in `=` without."""
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
_UNITTEST_BAD = re.compile(r"^FAILED \((.*)\)$", re.M)
_GO_PASS = re.compile(r"^\s*--- PASS:", re.M)
_GO_FAIL = re.compile(r"^\s*--- FAIL:", re.M)
_CARGO = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed")


@dataclass(frozen=True)
class TestRun:
    """What verification found; `verified` is None when no tests ran."""

    __test__ = False  # not a pytest class

    command: str | None
    exit_code: int | None = None
    passed: int | None = None
    failed: int | None = None
    output: str = ""
    note: str = ""

    @property
    def verified(self) -> bool | None:
        if self.command is None:
            return None
        return self.exit_code == 0 and not self.failed  # a run a limit ended did not pass

    @property
    def outcome(self) -> str:
        """One line for the record: `3 passed, 1 failed (pytest -q)`."""
        if self.command is None:
            return "no tests found"
        if self.exit_code is None:
            return f"tests did not run: {self.note} ({self.command})"
        if self.passed is None and self.failed is None:
            word = "passed" if self.exit_code == 0 else f"failed with exit code {self.exit_code}"
            return f"tests {word} ({self.command})"
        return f"{self.passed or 0} passed, {self.failed or 0} failed ({self.command})"


def find_test_command(info: RepoInfo) -> str | None:
    """`.autan.toml` first, then what the files show: pytest, npm, go, cargo, make."""
    if info.autan.test.command:
        return info.autan.test.command
    files = set(info.files)
    names = {f.rsplit("/", 1)[-1] for f in files}
    if any(re.fullmatch(r"test_.*\.py|.*_test\.py", n) for n in names):
        return "python -m pytest -q"
    if "package.json" in files:
        return "npm test"
    if "go.mod" in files:
        return "go test ./..."
    if "Cargo.toml" in files:
        return "cargo test"
    if "Makefile" in files:
        return "make test"
    return None


def count(output: str) -> tuple[int | None, int | None]:
    """Passed and failed counts from pytest, unittest, go test or cargo test output."""
    if lines := list(_PYTEST_LINE.finditer(output)):
        found = {kind: int(n) for n, kind in _PYTEST_COUNT.findall(lines[-1].group(0))}
        failed = found.get("failed", 0) + found.get("error", 0) + found.get("errors", 0)
        return found.get("passed", 0), failed
    if ran := _UNITTEST_RAN.findall(output):
        total = int(ran[-1])
        bad = _UNITTEST_BAD.findall(output)
        counts = re.findall(r"(?:failures|errors)=(\d+)", bad[-1]) if bad else []
        failed = sum(int(n) for n in counts)
        return total - failed, failed
    if cargo := _CARGO.findall(output):
        return sum(int(p) for p, _ in cargo), sum(int(f) for _, f in cargo)
    go_passed, go_failed = len(_GO_PASS.findall(output)), len(_GO_FAIL.findall(output))
    if go_passed or go_failed:
        return go_passed, go_failed
    return None, None


def run_tests(
    sandbox: Sandbox,
    command: str | None,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> TestRun:
    """Run `command` in the sandbox; a limit that ends it is noted, not raised."""
    if command is None:
        return TestRun(None)
    result = sandbox.exec(command, timeout=timeout, env=env, stop=stop)
    output = result.stdout + result.stderr
    if result.limit is not None:
        return TestRun(command, None, output=output, note=result.limit.replace("_", " "))
    passed, failed = count(output)
    return TestRun(command, result.exit_code, passed, failed, output)
