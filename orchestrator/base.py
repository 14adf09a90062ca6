"""The orchestrator's seams: the Runner that does an attempt, the Reporter that answers,
the IntakeProcessor that finishes a webhook delivery."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agent.base import Inbox, no_notes
from orchestrator.schemas import TaskView

if TYPE_CHECKING:
    from orchestrator.lifecycle import Lifecycle
    from orchestrator.reporting import Steps


@dataclass(frozen=True)
class AttemptOutcome:
    """What a finished attempt produced; the lifecycle keeps the best one of a task."""

    summary: str = ""
    diff: str = ""
    verified: bool | None = None
    tests_outcome: str | None = None
    tests: dict[str, Any] | None = None
    """The verdict against the baseline (agent.verify.Verdict.to_json)."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    partial: bool = False
    """The attempt ended early (a budget, a cancel, a timeout, the model): its work so far."""


class AttemptFailed(Exception):
    """Raised by a runner when the attempt ends without a result; the message is the reason.

    `outcome`, when given, is the partial work to keep: the diff so far, tokens and cost."""

    def __init__(self, reason: str, outcome: AttemptOutcome | None = None) -> None:
        super().__init__(reason)
        self.outcome = outcome


class Emit(Protocol):
    def __call__(self, kind: str, data: dict[str, Any]) -> None: ...


class Pin(Protocol):
    def __call__(self, commit: str) -> str: ...


class Phase(Protocol):
    def __call__(self, state: Literal["running", "waiting_model", "verifying"]) -> None: ...


@dataclass
class AttemptContext:
    """Everything a runner gets: the work, a way to report steps, and the stop signal."""

    task: TaskView
    attempt_id: str
    number: int
    emit: Emit
    phase: Phase
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the attempt is cancelled, times out or loses its lease: stop soon, kill commands."""
    pin: Pin = field(default=lambda commit: commit)
    """Record the commit the attempt works on; returns the task's, which the first pin set."""
    inbox: Inbox = field(default=no_notes)
    """A person's messages to the attempt not taken yet (see orchestrator.messages)."""


class Runner(Protocol):
    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        """Do the attempt; return its outcome or raise AttemptFailed. Watch `ctx.stop`."""
        ...


class Reporter(Protocol):
    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        """Answer the task's origin, each side effect through `steps` (which records it, so a
        retry does only what is left). Raise SideEffectUnavailable for a failure that may
        pass; called again after a crash, so key what is posted by the task id too."""
        ...


class IntakeProcessor(Protocol):
    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        """Finish a delivery the webhook accepted (calls to the service, then the submission).

        Run by a worker, and again after a crash or an error: submit with the
        delivery's idempotency key so a repeat makes no second task."""
        ...
