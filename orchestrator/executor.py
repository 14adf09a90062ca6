"""Runs one attempt in a worker: claim it, keep its heartbeat, call the runner, record the end."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

import redis
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError

from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome, Runner
from orchestrator.claims import Claim
from orchestrator.errors import LeaseLost, OrchestratorError, StoreUnavailable
from orchestrator.lifecycle import Lifecycle
from orchestrator.messages import Inbox
from orchestrator.outbox import STORE_DOWN, Outbox, first_line
from orchestrator.repo_urls import refusal
from orchestrator.states import AttemptState

log = logging.getLogger(__name__)

StopReason = Literal["cancelled", "timed_out", "lease_lost", "store_lost"]

RETRY_S, RETRY_MAX_S = 0.25, 5.0
"""First and longest pause between tries of an end the store refused for being unreachable;
the pause doubles with each try."""


class Watchdog(threading.Thread):
    """Beats the heartbeat and sets the attempt's stop signal on cancel, deadline, lost lease,
    or a store unreachable past the self-stop deadline."""

    def __init__(
        self, lifecycle: Lifecycle, claim: Claim, stop: threading.Event, outbox: Outbox
    ) -> None:
        super().__init__(name=f"heartbeat-{claim.attempt_id}", daemon=True)
        self._lifecycle = lifecycle
        self._claim = claim
        self._signal = stop
        self._outbox = outbox
        self._done = threading.Event()
        self._deadline = time.monotonic() + lifecycle.settings.attempt_time_limit_s
        self.reason: StopReason | None = None
        self._lock = threading.Lock()
        self._failing = False
        """Heartbeats fail now: said once when they start failing, once when they are back."""

    def run(self) -> None:
        settings = self._lifecycle.settings
        beat: threading.Thread | None = None
        while not self._done.wait(settings.heartbeat_interval_s):
            if beat is None or not beat.is_alive():
                # Each beat runs on its own thread, one at a time: a beat that hangs (a
                # database behind a dropped network) must not hold up the deadlines below.
                beat = threading.Thread(target=self._beat, name=f"{self.name}-beat", daemon=True)
                beat.start()
            if self.reason is not None:
                return
            silent = time.monotonic() - self._outbox.last_ok
            if silent > settings.self_stop_s:
                # Past the self-stop deadline, before the lease runs out and another worker
                # may take the attempt: a blip is ridden out, a long outage is not.
                log.warning(
                    "attempt %s: no heartbeat for %.0fs; stopping the run and its sandbox "
                    "before its lease runs out",
                    self._claim.attempt_id,
                    silent,
                )
                self._halt("store_lost")
                return
            if time.monotonic() > self._deadline:
                self._halt("timed_out")

    def _beat(self) -> None:
        try:
            cancelled = self._lifecycle.claims.heartbeat(self._claim)
            self._outbox.reached()
        except LeaseLost:
            self._halt("lease_lost")
            return
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "heartbeat of attempt %s failed (%s); the run goes on for up to %gs",
                    self._claim.attempt_id,
                    first_line(exc),
                    self._lifecycle.settings.self_stop_s,
                )
            return
        if self._failing:
            self._failing = False
            log.info("heartbeat of attempt %s is back", self._claim.attempt_id)
        if cancelled:
            self._halt("cancelled")

    def _halt(self, reason: StopReason) -> None:
        with self._lock:
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
        self._ending = False
        """This run's end waits out a store outage and is marked so in Redis."""

    def execute(self, attempt_id: str) -> str:
        """Run the attempt if it is there to take; returns what happened, for the log."""
        try:
            claim = self.lifecycle.claims.claim(attempt_id, worker=self.worker_name)
        except STORE_DOWN as exc:
            # The job ends without a claim: clear its marker so the reconciler queues the
            # attempt again once the store is back, instead of waiting on a job that is gone.
            self._forget_job(attempt_id)
            log.warning("could not claim attempt %s: %s", attempt_id, first_line(exc))
            return "not taken: the store is unreachable"
        if claim is None:
            self._forget_job(attempt_id)
            return "not taken: ended, cancelled, or held by a live worker"
        if refused := refusal(claim.task.repo):
            # Checked here too, for tasks stored before submissions were checked.
            outbox = Outbox(self.lifecycle.claims, claim, limit=1)
            return self._end(claim, outbox, AttemptState.FAILED, refused, None)
        outbox = Outbox(self.lifecycle.claims, claim, limit=self.lifecycle.settings.event_buffer)
        ctx = AttemptContext(
            task=claim.task,
            attempt_id=claim.attempt_id,
            number=claim.number,
            emit=outbox.event,
            phase=lambda state: outbox.phase(AttemptState(state)),
            pin=lambda commit: self.lifecycle.claims.pin_commit(claim, commit),
            inbox=Inbox(self.lifecycle.sessions, claim.task_id, claim.attempt_id),
        )
        watchdog = Watchdog(self.lifecycle, claim, ctx.stop, outbox)
        watchdog.start()
        try:
            state, reason, outcome = self._run(ctx, outbox)
            stopped = watchdog.reason
            if stopped in ("lease_lost", "store_lost") or reason == STORE_LOST:
                return self._give_back(claim, outbox, stopped)
            # What the runner kept (a partial diff, tokens, cost) stays with a stopped attempt.
            if stopped == "cancelled":
                state, reason = AttemptState.CANCELLED, "the task was cancelled"
            elif stopped == "timed_out":
                limit = self.lifecycle.settings.attempt_time_limit_s
                state, reason = AttemptState.TIMED_OUT, f"ran past the limit of {limit:g}s"
            # The watchdog keeps beating while the end is retried, so an end that waits
            # out a short outage still holds its lease.
            return self._end(claim, outbox, state, reason, outcome)
        finally:
            watchdog.finish()

    def _forget_job(self, attempt_id: str) -> None:
        try:
            self.lifecycle.queue.taken(attempt_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not clear the job marker of %s: %s", attempt_id, exc)

    def _end(
        self,
        claim: Claim,
        outbox: Outbox,
        state: AttemptState,
        reason: str | None,
        outcome: AttemptOutcome | None,
    ) -> str:
        """Send the kept events, then record the end; each retried across a store outage of
        up to AUTAN_STORE_OUTAGE_S, and the job acknowledged only once this returns."""
        self._ending = False
        claims = self.lifecycle.claims
        try:
            self._retrying(claim, outbox.flush)
            try:
                self._retrying(
                    claim, lambda: claims.record_end(claim, state, reason=reason, outcome=outcome)
                )
            except STORE_DOWN:
                raise
            except DBAPIError as exc:
                # Not an outage (those are retried above): the store refuses this result for
                # good, so say so on the attempt rather than run it again to the same end.
                log.error("attempt %s: the store refuses its result: %s", claim.attempt_id, exc)
                refused = f"its result could not be stored: {first_line(exc)}"
                self._retrying(
                    claim, lambda: claims.record_end(claim, AttemptState.FAILED, reason=refused)
                )
                state = AttemptState.FAILED
            # Ending the task is idempotent, so it is retried on its own: a retry of the
            # end above would find its own lease gone and take itself for a stale run.
            self._retrying(claim, lambda: self.lifecycle.finalize(claim.task_id))
        except LeaseLost:
            log.warning("attempt %s was taken over; dropping this run's outcome", claim.attempt_id)
            return "lease lost"
        except STORE_DOWN as exc:
            log.warning(
                "attempt %s: its end could not be recorded (%s); it will run again",
                claim.attempt_id,
                first_line(exc),
            )
            return "store unreachable"
        finally:
            if self._ending:
                self._unmark_ending(claim.attempt_id)
        return str(state)

    def _unmark_ending(self, attempt_id: str) -> None:
        try:
            self.lifecycle.queue.ended(attempt_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not clear the ending mark of %s: %s", attempt_id, exc)

    def _give_back(self, claim: Claim, outbox: Outbox, stopped: StopReason | None) -> str:
        if stopped == "lease_lost":
            log.warning("attempt %s was taken over; dropping this run's outcome", claim.attempt_id)
            return "lease lost"
        # Stopped itself without the store: queue it again now if the store is back before
        # the lease runs out; otherwise the reconciler does when the lease has run out.
        reason = "its worker could not reach the store; running it again"
        try:
            if not self.lifecycle.claims.release(claim, reason):
                # Frozen, then thawed: another worker has the attempt by now.
                log.warning(
                    "attempt %s was taken over; dropping this run's outcome", claim.attempt_id
                )
                return "lease lost"
        except STORE_DOWN as exc:
            log.warning(
                "attempt %s stopped without the store (%s); the reconciler will queue it again",
                claim.attempt_id,
                first_line(exc),
            )
        return "stopped: the store is unreachable"

    def _retrying(self, claim: Claim, write: Callable[[], object]) -> None:
        """Try `write` until it goes through, backing off, or the store has refused it as
        unreachable for AUTAN_STORE_OUTAGE_S; any other error is raised at once."""
        outage_s = self.lifecycle.settings.store_outage_s
        pause, since = RETRY_S, time.monotonic()
        while True:
            try:
                write()
                return
            except STORE_DOWN as exc:
                left = outage_s - (time.monotonic() - since)
                if left <= 0:
                    raise
                if pause == RETRY_S:
                    self._mark_ending(claim.attempt_id, left)
                    log.warning(
                        "attempt %s: the store is unreachable (%s); retrying its end for up to %gs",
                        claim.attempt_id,
                        first_line(exc),
                        outage_s,
                    )
                time.sleep(min(pause, left))
                pause = min(2 * pause, RETRY_MAX_S)

    def _mark_ending(self, attempt_id: str, for_s: float) -> None:
        """Tell the reconcilers (through Redis, which is often up while the database is not)
        that this run is ending, so an outage past the lease does not run it again."""
        try:
            self.lifecycle.queue.ending(
                attempt_id, for_s=for_s + self.lifecycle.settings.heartbeat_timeout_s
            )
            self._ending = True
        except (redis.RedisError, OSError) as exc:
            log.warning("could not mark attempt %s as ending: %s", attempt_id, exc)

    def _run(
        self, ctx: AttemptContext, outbox: Outbox
    ) -> tuple[AttemptState, str | None, AttemptOutcome | None]:
        try:
            outbox.phase(AttemptState.RUNNING)
            outcome = self.runner.run(ctx)
        except AttemptFailed as exc:
            return AttemptState.FAILED, str(exc) or "the runner gave no reason", exc.outcome
        except SoftTimeLimitExceeded:
            return AttemptState.TIMED_OUT, "stopped by the worker's time limit", None
        except LeaseLost:
            ctx.stop.set()
            return AttemptState.FAILED, "lease lost", None
        except StoreUnavailable:
            ctx.stop.set()
            return AttemptState.FAILED, STORE_LOST, None
        except OrchestratorError as exc:
            return AttemptState.FAILED, str(exc), None
        except Exception as exc:
            log.exception("runner crashed on attempt %s", ctx.attempt_id)
            return AttemptState.FAILED, f"the runner crashed: {type(exc).__name__}: {exc}", None
        return AttemptState.SUCCEEDED, None, outcome


STORE_LOST = "the store was unreachable for too long"
