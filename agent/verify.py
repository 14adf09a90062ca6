"""Verification: find the test command, run it, and judge an attempt against the baseline."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.baseline import Baseline
from agent.repo import RepoInfo
from agent.testresults import PYTEST_OPTIONS, TestReport, read_report
from sandbox.base import Sandbox

NO_TESTS = "no tests found"
HARNESS_NAMES = frozenset(
    {"conftest.py", "pytest.ini", "tox.ini", "noxfile.py", "usercustomize.py",
     "sitecustomize.py", ".autan.toml", ".gitlab-ci.yml", ".travis.yml", "Jenkinsfile"}
)  # fmt: skip
"""Files that change how tests are found or run: an attempt that changes them ranks lower."""
_SECTIONED = frozenset({"setup.cfg", "pyproject.toml"})
_TEST_SECTION = re.compile(r"pytest|tox|unittest|nose|coverage")
_DIFF_FILE = re.compile(r"^diff --git a/(.+?) b/(.+)$", re.M)
_SHOWN = 50
"""Test names kept per list in the record; counts stay whole."""


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
        return "go test -v ./..."
    if "Cargo.toml" in files:
        return "cargo test"
    if "Makefile" in files:
        return "make test"
    return None


def run_tests(
    sandbox: Sandbox,
    command: str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> TestReport:
    """Run `command` in the sandbox, pytest asked to name each test; a limit is noted."""
    env = dict(env or {})
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {PYTEST_OPTIONS}".strip()
    result = sandbox.exec(command, timeout=timeout, env=env, stop=stop)
    output = result.stdout + result.stderr
    if result.limit is not None:
        return read_report(command, None, output, result.limit.replace("_", " "))
    return read_report(command, result.exit_code, output)


def harness_changes(diff: str) -> list[str]:
    """Paths of test configuration and harness files the diff changes."""
    found = []
    parts = _DIFF_FILE.split(diff)
    # split gives [before, a, b, body, a, b, body, ...]
    for i in range(1, len(parts) - 2, 3):
        path, body = parts[i + 1], parts[i + 2]
        name = path.rsplit("/", 1)[-1]
        changed = "\n".join(
            line for line in body.splitlines()
            if line.startswith(("+", "-", "@@")) and not line.startswith(("+++", "---"))
        )  # fmt: skip
        if (
            name in HARNESS_NAMES
            or path.startswith((".github/", ".circleci/"))
            or (name in _SECTIONED and _TEST_SECTION.search(changed))
        ):
            found.append(path)
    return found


@dataclass(frozen=True)
class Verdict:
    """An attempt's tests against the baseline: what it fixed, kept, broke and lost."""

    command: str | None
    verified: bool
    reason: str
    fixed: list[str] = field(default_factory=list)
    still_passing: int = 0
    broke: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    """Tests the base ran that this run did not (deleted, deselected, skipped)."""
    still_failing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    """New tests that pass; new ones that fail are in `broke`."""
    flaky: list[str] = field(default_factory=list)
    harness: list[str] = field(default_factory=list)
    regressions: int = 0
    """Tests that passed on the base and now fail or are gone."""
    output: str = ""

    @property
    def outcome(self) -> str:
        """One line for the record."""
        if self.command is None:
            return NO_TESTS
        line = (
            f"{len(self.fixed)} fixed, {self.still_passing} still passing, {len(self.broke)} "
            f"broken, {len(self.vanished)} vanished"
        )
        if self.flaky:
            line += f"; {len(self.flaky)} flaky on the base, ignored"
        if self.harness:
            line += f"; test harness changed: {', '.join(self.harness)}"
        return f"{'verified' if self.verified else 'unverified'}: {line} ({self.command}); " \
               f"{self.reason}"  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        lists = ("fixed", "broke", "vanished", "still_failing", "added", "flaky", "harness")
        record: dict[str, Any] = {name: getattr(self, name)[:_SHOWN] for name in lists}
        record["counts"] = {name: len(getattr(self, name)) for name in lists}
        record["counts"]["still_passing"] = self.still_passing
        return {**record, "command": self.command, "verified": self.verified,
                "reason": self.reason, "regressions": self.regressions}  # fmt: skip


def no_tests() -> Verdict:
    return Verdict(None, False, NO_TESTS)


def judge(baseline: Baseline, now: TestReport, diff: str) -> Verdict:
    """Compare a run with the diff applied to the baseline's run of the same command."""
    harness = harness_changes(diff)
    if now.exit_code is None:
        return Verdict(now.command, False, f"the tests did not finish: {now.note}",
                       harness=harness, output=now.output)  # fmt: skip
    base = baseline.report
    if base.named and now.named:
        return _by_name(baseline, now, harness)
    return _by_count(base, now, harness)


def _by_name(baseline: Baseline, now: TestReport, harness: list[str]) -> Verdict:
    flaky = set(baseline.flaky)
    base = {t: o for t, o in baseline.report.tests.items() if t not in flaky}
    after = {t: o for t, o in now.tests.items() if t not in flaky}
    ran = {t for t, o in after.items() if o != "skipped"}
    fixed = sorted(t for t, o in base.items() if o == "failed" and after.get(t) == "passed")
    kept = sum(1 for t, o in base.items() if o == "passed" and after.get(t) == "passed")
    still = sorted(t for t, o in base.items() if o == "failed" and after.get(t) == "failed")
    new = {t: o for t, o in after.items() if t not in base}
    broke = sorted(t for t, o in base.items() if o == "passed" and after.get(t) == "failed")
    broke += sorted(t for t, o in new.items() if o == "failed")
    vanished = sorted(t for t, o in base.items() if o != "skipped" and t not in ran)
    added = sorted(t for t, o in new.items() if o == "passed")
    lost = [t for t in vanished if base[t] == "passed"]
    regressions = len([t for t in broke if t in base]) + len(lost)
    failing_on_base = any(o == "failed" for o in base.values())
    if regressions or broke:
        verified, reason = False, "tests that passed on the base fail or are gone now"
    elif fixed:
        verified, reason = True, "fixes what failed on the base and breaks nothing"
    elif failing_on_base:
        verified, reason = False, "no test that failed on the base passes now"
    elif added:
        verified, reason = True, "no test failed on the base; the new tests pass"
    else:
        verified, reason = False, "no test failed on the base and no test was added"
    return Verdict(
        now.command, verified, reason, fixed, kept, broke, vanished, still, added,
        sorted(flaky), harness, regressions, now.output,
    )  # fmt: skip


def _by_count(base: TestReport, now: TestReport, harness: list[str]) -> Verdict:
    """Where a runner names no tests: counts, or only exit codes where it gives none."""
    if None not in (base.passed, base.failed, now.passed, now.failed):
        p0, f0, p1, f1 = base.passed or 0, base.failed or 0, now.passed or 0, now.failed or 0
        lost = max(0, p0 + f0 - p1 - f1)
        verified = now.exit_code == 0 and f1 == 0 and lost == 0 and (f0 > 0 or p1 > p0)
        reason = f"by counts only: {p0} passed, {f0} failed on the base; {p1} and {f1} now"
        return Verdict(now.command, verified, reason, still_passing=min(p0, p1), harness=harness,
                       regressions=lost + (f1 if f0 == 0 else 0), output=now.output)  # fmt: skip
    verified = base.exit_code != 0 and now.exit_code == 0
    reason = f"by exit code only: {base.exit_code} on the base, {now.exit_code} now"
    return Verdict(now.command, verified, reason, harness=harness, output=now.output,
                   regressions=int(base.exit_code == 0 and now.exit_code != 0))  # fmt: skip
