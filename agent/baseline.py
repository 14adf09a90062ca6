"""The baseline: the test command's outcomes on the base commit, run twice to find flaky tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.testresults import TestReport


@dataclass(frozen=True)
class Baseline:
    """What the base gives: each test's outcome where two runs agree, and those that did not."""

    report: TestReport
    flaky: tuple[str, ...] = ()
    """Tests whose outcome changed between the two runs: ignored both ways."""

    def to_json(self) -> dict[str, Any]:
        return {"report": self.report.to_json(), "flaky": list(self.flaky)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        return cls(TestReport.from_json(data["report"]), tuple(data["flaky"]))


class BaselineCache(Protocol):
    """Where baselines are kept, shared by every worker host."""

    def get(self, key: str) -> Baseline | None: ...
    def put(self, key: str, baseline: Baseline) -> None:
        """Keep it; when another worker kept one first, theirs stays."""
        ...


def baseline_key(base: str, command: str, setup: Sequence[str]) -> str:
    """The cache key: the base (a commit), the test command and the set-up commands."""
    text = json.dumps({"base": base, "command": command, "setup": list(setup)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def merge(first: TestReport, second: TestReport) -> Baseline:
    """One baseline of two runs: a test whose outcome differs (or is missing) in one is flaky."""
    if not (first.named and second.named):
        return Baseline(first)
    names = first.tests.keys() | second.tests.keys()
    flaky = tuple(sorted(t for t in names if first.tests.get(t) != second.tests.get(t)))
    return Baseline(first, flaky)


def get_baseline(
    cache: BaselineCache, key: str, run: Callable[[], TestReport]
) -> tuple[Baseline, bool]:
    """The cached baseline, or a new one of two runs (each in a fresh sandbox); and whether it
    was cached. A run a limit ended is not kept: the next attempt tries again."""
    if (kept := cache.get(key)) is not None:
        return kept, True
    first = run()
    if first.exit_code is None:
        return Baseline(first), False
    second = run()
    if second.exit_code is None:
        return Baseline(first), False
    baseline = merge(first, second)
    cache.put(key, baseline)
    return baseline, False


class MemoryBaselines:
    """A BaselineCache for one process with no store: `autan demo`."""

    def __init__(self) -> None:
        self._kept: dict[str, Baseline] = {}

    def get(self, key: str) -> Baseline | None:
        return self._kept.get(key)

    def put(self, key: str, baseline: Baseline) -> None:
        self._kept.setdefault(key, baseline)
