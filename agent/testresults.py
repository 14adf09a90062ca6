"""Per-test outcomes read from a test run's output: pytest (-rA), unittest (-v), go, cargo."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["passed", "failed", "skipped"]

PYTEST_OPTIONS = "-rA"
"""Added to PYTEST_ADDOPTS for every test run: pytest then names each test and its outcome."""

_PYTEST_SUMMARY = re.compile(r"^=+ short test summary info =+$", re.M)
_PYTEST_RESULT = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (.+?)(?: - .*)?$")
_PYTEST_WORDS: dict[str, Outcome] = {
    "PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "failed",
    "XFAIL": "skipped",
}  # fmt: skip
_UNITTEST_TEST = re.compile(r"^(\w+) \(([\w.]+)\)")
_UNITTEST_STATUS = re.compile(
    r"(?:^|\.\.\. )(ok|FAIL|ERROR|skipped|expected failure|unexpected success)"
)
_UNITTEST_WORDS: dict[str, Outcome] = {
    "ok": "passed", "unexpected success": "failed", "FAIL": "failed", "ERROR": "failed",
    "skipped": "skipped", "expected failure": "skipped",
}  # fmt: skip
_GO = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)", re.M)
_CARGO = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)$", re.M)
_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
_PYTEST_LINE = re.compile(
    r"^=*\s*(?:\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)"
    r"(?:, )?)+ in [\d.]+s.*$",
    re.M,
)
"""pytest's last line: `2 passed in 0.01s` with -q, framed in `=` without."""
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
_UNITTEST_BAD = re.compile(r"^FAILED \((.*)\)$", re.M)
_CARGO_COUNT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed")


@dataclass(frozen=True)
class TestReport:
    """One run of the test command: each named test's outcome, or counts where no names."""

    __test__ = False  # not a pytest class

    command: str
    exit_code: int | None
    """None when a limit (time, memory) ended the run."""
    tests: dict[str, Outcome] = field(default_factory=dict)
    passed: int | None = None
    failed: int | None = None
    note: str = ""
    output: str = ""

    @property
    def named(self) -> bool:
        return bool(self.tests)

    def to_json(self) -> dict[str, Any]:
        """Without the output: what a baseline keeps."""
        return {
            "command": self.command, "exit_code": self.exit_code, "tests": self.tests,
            "passed": self.passed, "failed": self.failed, "note": self.note,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestReport:
        return cls(**{k: data[k] for k in ("command", "exit_code", "tests", "passed", "failed")},
                   note=data.get("note", ""))  # fmt: skip


def read_report(command: str, exit_code: int | None, output: str, note: str = "") -> TestReport:
    tests = outcomes(output)
    passed: int | None
    failed: int | None
    if tests:
        passed = sum(1 for o in tests.values() if o == "passed")
        failed = sum(1 for o in tests.values() if o == "failed")
    else:
        passed, failed = count(output)
    return TestReport(command, exit_code, tests, passed, failed, note, output)


def outcomes(output: str) -> dict[str, Outcome]:
    """Each test's outcome by the first runner whose format the output shows; {} if none."""
    for read in (_pytest, _unittest, _go, _cargo):
        if found := read(output):
            return found
    return {}


def _pytest(output: str) -> dict[str, Outcome]:
    # Only the summary at the end: a test's own output could print lines that look like it.
    heads = list(_PYTEST_SUMMARY.finditer(output))
    if not heads:
        return {}
    found: dict[str, Outcome] = {}
    for line in output[heads[-1].end() :].splitlines():
        if match := _PYTEST_RESULT.match(line):
            found[match.group(2)] = _PYTEST_WORDS[match.group(1)]
    return found


def _unittest(output: str) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    current: str | None = None
    for line in output.splitlines():
        if (test := _UNITTEST_TEST.match(line)) is not None:
            method, where = test.groups()
            # Python 3.11 names the method in the parentheses; older ones only the class.
            current = where if where.endswith(f".{method}") else f"{where}.{method}"
        if current is not None and (status := _UNITTEST_STATUS.search(line)) is not None:
            found[current] = _UNITTEST_WORDS[status.group(1)]
            current = None
    return found


def _go(output: str) -> dict[str, Outcome]:
    words: dict[str, Outcome] = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}
    return {name: words[word] for word, name in _GO.findall(output)}


def _cargo(output: str) -> dict[str, Outcome]:
    words: dict[str, Outcome] = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}
    return {name: words[word] for name, word in _CARGO.findall(output)}


def count(output: str) -> tuple[int | None, int | None]:
    """Passed and failed counts from pytest, unittest or cargo summaries; (None, None) if none."""
    if lines := list(_PYTEST_LINE.finditer(output)):
        found = {kind: int(n) for n, kind in _COUNTS.findall(lines[-1].group(0))}
        failed = found.get("failed", 0) + found.get("error", 0) + found.get("errors", 0)
        return found.get("passed", 0), failed
    if ran := _UNITTEST_RAN.findall(output):
        total = int(ran[-1])
        bad = _UNITTEST_BAD.findall(output)
        counts = re.findall(r"(?:failures|errors)=(\d+)", bad[-1]) if bad else []
        failed = sum(int(n) for n in counts)
        return total - failed, failed
    if cargo := _CARGO_COUNT.findall(output):
        return sum(int(p) for p, _ in cargo), sum(int(f) for _, f in cargo)
    return None, None
