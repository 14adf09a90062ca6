"""An attempt's verification: the baseline, then the diff alone, each in a fresh sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from agent.baseline import Baseline, BaselineCache, baseline_key, get_baseline
from agent.repo import RepoInfo
from agent.testresults import TestReport
from agent.tools import truncate
from agent.verify import Verdict, find_test_command, judge, no_tests, run_tests
from orchestrator.base import Emit
from sandbox.base import Sandbox
from sandbox.network import NetworkConfig


def apply_diff(sandbox: Sandbox, diff: str, timeout: float, stop: threading.Event) -> str | None:
    """Apply `diff` to the sandbox's tree with `git apply`; None, or why it does not apply."""
    applied = sandbox.exec(
        ["git", "-c", "safe.directory=*", "apply", "--whitespace=nowarn", "-"],
        stdin=diff.encode(), timeout=timeout, stop=stop,
    )  # fmt: skip
    if applied.exit_code == 0:
        return None
    return (applied.stderr or applied.stdout).strip()[-500:]


@dataclass(frozen=True)
class Limits:
    setup_s: float
    tests_s: float
    event_chars: int


class Verification:
    """Starts the baseline while the agent works (it needs only the base), then judges a diff.

    Neither run uses the agent's sandbox: what it left in /tmp or $HOME, or anywhere outside
    its diff, is not there."""

    def __init__(
        self,
        *,
        base_id: str,
        info: RepoInfo,
        fresh: Callable[[], Sandbox],
        cache: BaselineCache,
        env: Mapping[str, str],
        limits: Limits,
        emit: Emit,
        stop: threading.Event,
        setup_network: NetworkConfig | None = None,
    ) -> None:
        self.command = find_test_command(info)
        self.setup_network = setup_network
        """Set-up's own network policy; the tests keep the sandbox's."""
        self.setup = list(info.autan.setup.commands)
        self.key = baseline_key(base_id, self.command or "", self.setup)
        self.fresh, self.cache, self.env = fresh, cache, dict(env)
        self.limits, self.emit, self.stop = limits, emit, stop
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="baseline")
        self._baseline: Future[tuple[Baseline, bool, float]] | None = None

    def start(self) -> None:
        if self.command is not None and self._baseline is None:
            self._baseline = self._pool.submit(self._make_baseline)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _make_baseline(self) -> tuple[Baseline, bool, float]:
        began = time.monotonic()
        baseline, cached = get_baseline(self.cache, self.key, lambda: self.run(None))
        return baseline, cached, time.monotonic() - began

    def verify(self, diff: str) -> Verdict:
        """The diff's tests against the baseline's; `no tests found` where there is no command."""
        if self.command is None:
            return no_tests()
        self.start()
        assert self._baseline is not None
        baseline, cached, baseline_s = self._baseline.result()
        report = baseline.report
        self.emit(
            "tests.baseline",
            {"command": self.command, "cached": cached, "exit_code": report.exit_code,
             "passed": report.passed, "failed": report.failed, "flaky": list(baseline.flaky),
             "note": report.note, "duration_s": round(baseline_s, 3)},
        )  # fmt: skip
        if report.exit_code is None:
            return Verdict(self.command, False, f"the baseline did not finish: {report.note}")
        began = time.monotonic()
        verdict = judge(baseline, self.run(diff), diff)
        self.emit(
            "tests.finished",
            {**verdict.to_json(), "outcome": verdict.outcome,
             "duration_s": round(time.monotonic() - began, 3),
             "output": truncate(verdict.output, self.limits.event_chars)},
        )  # fmt: skip
        return verdict

    def run(self, diff: str | None) -> TestReport:
        """Set up a fresh sandbox over the base, apply `diff`, run the tests."""
        assert self.command is not None
        sandbox = self.fresh()
        try:
            if diff and (why := apply_diff(sandbox, diff, self.limits.setup_s, self.stop)):
                return TestReport(self.command, None, note=f"the diff does not apply: {why}")
            for command in self.setup:
                done = sandbox.exec(
                    command, timeout=self.limits.setup_s, env=self.env, stop=self.stop,
                    network=self.setup_network,
                )  # fmt: skip
                if done.exit_code != 0 or done.limit:
                    why = done.limit or f"exit code {done.exit_code}"
                    return TestReport(self.command, None, note=f"set-up {command!r} failed ({why})")
            return run_tests(
                sandbox, self.command, timeout=self.limits.tests_s, env=self.env, stop=self.stop
            )
        finally:
            sandbox.close()
