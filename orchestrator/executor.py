"""Runs one attempt in a worker: claim it, keep its heartbeat, call the runner, record the end."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome, Runner
from orchestrator.claims import Claim
from orchestrator.errors import LeaseLost, OrchestratorError
from orchestrator.lifecycle import Lifecycle
from orchestrator.states import AttemptState

log = logging.getLogger(__name__)

StopReason = Literal["cancelled", "timed_out", "lease_lost"]


class Watchdog(threading.Thread):
    """Beats the heartbeat and sets the attempt's stop signal on cancel, deadline or lost lease."""

    def __init__(self, lifecycle: Lifecycle, claim: Claim, stop: threading.Event) -> None:
        super().__init__(name=f"heartbeat-{claim.attempt_id}", daemon=True)
        self._lifecycle = lifecycle
        self._claim = claim
        self._signal = stop
        self._done = threading.Event()
        self._deadline = time.monotonic() + lifecycle.settings.attempt_time_limit_s
        self.reason: StopReason | None = None

    def run(self) -> None:
        interval = self._lifecycle.settings.heartbeat_interval_s
        while not self._done.wait(interval):
            try:
                cancelled = self._lifecycle.claims.heartbeat(self._claim)
            except LeaseLost:
                self._halt("lease_lost")
                return
            except Exception:
                # A database blip: keep trying; the heartbeat timeout is the real judge.
                log.exception("heartbeat of attempt %s failed", self._claim.attempt_id)
                continue
            if cancelled:
                self._halt("cancelled")
            elif time.monotonic() > self._deadline:
                self._halt("timed_out")

    def _halt(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self._signal.set()

    def finish(self) -> None:
        self._done.set()
        self.join()


class AttemptExecutor:
    def __init__(self, lifecycle: Lifecycle, runner: Runner, worker_name: str) -> None:
        self.lifecycle = lifecycle
        self.runner = runner
        self.worker_name = worker_name

    def execute(self, attempt_id: str) -> str:
        """Run the attempt if it is there to take; returns what happened, for the log."""
        claim = self.lifecycle.claims.claim(attempt_id, worker=self.worker_name)
        if claim is None:
            return "not taken: ended, cancelled, or held by a live worker"
        ctx = AttemptContext(
            task=claim.task,
            attempt_id=claim.attempt_id,
            number=claim.number,
            emit=lambda kind, data: self._emit(claim, kind, data),
            phase=lambda state: self.lifecycle.claims.set_phase(claim, AttemptState(state)),
        )
        watchdog = Watchdog(self.lifecycle, claim, ctx.stop)
        watchdog.start()
        try:
            state, reason, outcome = self._run(ctx, claim)
        finally:
            watchdog.finish()
        if watchdog.reason == "lease_lost":
            log.warning("attempt %s was taken over; dropping this run's outcome", attempt_id)
            return "lease lost"
        if watchdog.reason == "cancelled":
            state, reason, outcome = AttemptState.CANCELLED, "the task was cancelled", None
        elif watchdog.reason == "timed_out":
            limit = self.lifecycle.settings.attempt_time_limit_s
            state, reason, outcome = (
                AttemptState.TIMED_OUT,
                f"ran past the limit of {limit:g}s",
                None,
            )
        try:
            self.lifecycle.claims.finish(claim, state, reason=reason, outcome=outcome)
        except LeaseLost:
            log.warning("attempt %s was taken over before it could finish", attempt_id)
            return "lease lost"
        return str(state)

    def _emit(self, claim: Claim, kind: str, data: dict[str, Any]) -> None:
        self.lifecycle.claims.emit(claim, kind, data)

    def _run(
        self, ctx: AttemptContext, claim: Claim
    ) -> tuple[AttemptState, str | None, AttemptOutcome | None]:
        try:
            self.lifecycle.claims.set_phase(claim, AttemptState.RUNNING)
            outcome = self.runner.run(ctx)
        except AttemptFailed as exc:
            return AttemptState.FAILED, str(exc) or "the runner gave no reason", None
        except SoftTimeLimitExceeded:
            return AttemptState.TIMED_OUT, "stopped by the worker's time limit", None
        except LeaseLost:
            return AttemptState.FAILED, "lease lost", None
        except OrchestratorError as exc:
            return AttemptState.FAILED, str(exc), None
        except Exception as exc:
            log.exception("runner crashed on attempt %s", claim.attempt_id)
            return AttemptState.FAILED, f"the runner crashed: {type(exc).__name__}: {exc}", None
        return AttemptState.SUCCEEDED, None, outcome
