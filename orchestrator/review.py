"""The model's review of two verified attempts (AUTAN_CHOOSE_REVIEW): one call, bounded by a
timeout, whose pick and reason are recorded; the ranking's pick stands whenever it fails."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.choose import verified_ranked
from orchestrator.config import OrchestratorSettings
from orchestrator.models import Attempt, Event, Result, Task
from orchestrator.states import ACTIVE_TASK_STATES, AttemptState
from serving.base import ChatModel, Message

if TYPE_CHECKING:
    from orchestrator.lifecycle import Lifecycle

PROMPT = (Path(__file__).parent / "review_prompt.md").read_text().strip()
MAX_DIFF_CHARS = 30_000
"""Each diff is cut to this much in the prompt, so two big ones still fit a context window."""
MAX_ANSWER_TOKENS = 600


@dataclass(frozen=True)
class Candidate:
    """What the model sees of one verified attempt; read out of the store beforehand, so
    that the model call holds no session or transaction."""

    result_id: int
    number: int
    diff: str
    tests_outcome: str

    @classmethod
    def of(cls, result: Result) -> Candidate:
        return cls(result.id, result.attempt.number, result.diff, result.tests_outcome or "")


@dataclass(frozen=True)
class Review:
    """The pick between the ranking's first (`first`) and second; `by` says who decided:
    the model, or the ranking when the model failed (then `reason` says how)."""

    first: Candidate
    second: Candidate
    picked: Candidate
    by: str
    reason: str

    def event(self) -> dict[str, Any]:
        return {
            "candidates": [
                {"attempt": c.number, "result_id": c.result_id, "ranked": n}
                for n, c in enumerate((self.first, self.second), start=1)
            ],
            "picked": {"attempt": self.picked.number, "result_id": self.picked.result_id},
            "by": self.by,
            "reason": self.reason,
        }


ASKED, REVIEWED = "task.reviewing", "task.review"
WAIT_MARGIN_S = 5.0
"""Beyond the timeout, how long another worker ending the same task waits for the review."""
POLL_S = 0.2


def reviewed(lifecycle: Lifecycle, task_id: str) -> int | None:
    """The result id the review picked for a task that is ready to end, asking the model if
    no review is recorded yet; None when there is nothing to review (fewer than two verified
    attempts, attempts still running, the task already ended).

    The first worker to record `task.reviewing` (under the task row's lock) asks; another
    that ends the same task at the same moment waits for its `task.review` (a bounded wait)."""
    reviewer = lifecycle.reviewer
    assert reviewer is not None
    with lifecycle.sessions() as session:
        task = session.get_one(Task, task_id)
        attempts = list(session.scalars(select(Attempt).where(Attempt.task_id == task_id)))
        if task.state not in ACTIVE_TASK_STATES or any(
            not AttemptState(a.state).terminal for a in attempts
        ):
            return None
        if (done := _recorded(session, task_id, REVIEWED)) is not None:
            return int(done.data["picked"]["result_id"])
        ranked = verified_ranked(attempts)
        if len(ranked) < 2:
            return None
        first, second = Candidate.of(ranked[0]), Candidate.of(ranked[1])
        instruction = task.instruction
    with lifecycle.write() as (session, events):
        # A no-op write that locks the task's row: the check below sees any other claim.
        session.execute(update(Task).where(Task.id == task_id).values(event_seq=Task.event_seq))
        other = _recorded(session, task_id, ASKED)
        if other is None:
            data = {"candidates": [first.number, second.number]}
            lifecycle.event(session, events, task_id, ASKED, data)
    # This process's own answer, if recording it failed (the store went away): record it now.
    review = reviewer.unrecorded.get(task_id)
    if other is not None and review is None:
        return _wait(lifecycle, task_id, reviewer.timeout_s + WAIT_MARGIN_S)
    review = review or reviewer.review(instruction, first, second)
    try:
        with lifecycle.write() as (session, events):
            lifecycle.event(session, events, task_id, REVIEWED, review.event())
    except Exception:
        reviewer.unrecorded[task_id] = review  # the end is retried; it records this answer
        raise
    reviewer.unrecorded.pop(task_id, None)
    return review.picked.result_id


def _recorded(session: Session, task_id: str, kind: str) -> Event | None:
    query = select(Event).where(Event.task_id == task_id, Event.kind == kind)
    return session.scalars(query.order_by(Event.seq).limit(1)).first()


def _wait(lifecycle: Lifecycle, task_id: str, limit_s: float) -> int | None:
    """The pick another worker's review recorded; None (the ranking's) if none comes in time:
    that worker died while asking."""
    deadline = time.monotonic() + limit_s
    while True:
        with lifecycle.sessions() as session:
            if (done := _recorded(session, task_id, REVIEWED)) is not None:
                return int(done.data["picked"]["result_id"])
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)


class Reviewer:
    """Asks the model once to pick between two candidates, waiting at most `timeout_s`.

    `model` is called on first use: the API process builds a lifecycle too, and never
    reviews, so it never loads the agent runner's settings and router."""

    def __init__(self, model: Callable[[], ChatModel], timeout_s: float) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.unrecorded: dict[str, Review] = {}
        """Answers (by task id) whose `task.review` could not be written yet."""

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings) -> Reviewer | None:
        """The reviewer AUTAN_CHOOSE_REVIEW asks for, over the worker's shared router."""
        if not settings.choose_review:
            return None

        def model() -> ChatModel:
            from orchestrator.agent_runner import AgentRunnerSettings, shared_router

            return shared_router(AgentRunnerSettings())

        return cls(model, settings.choose_review_timeout_s)

    def review(self, instruction: str, first: Candidate, second: Candidate) -> Review:
        answer: list[str] = []
        failed: list[BaseException] = []

        def ask() -> None:
            try:
                reply = self.model().complete(
                    [
                        Message("system", PROMPT),
                        Message("user", prompt(instruction, first, second)),
                    ],
                    tool_choice="none",
                    max_tokens=MAX_ANSWER_TOKENS,
                )
                answer.append(reply.message.content or "")
            except Exception as exc:  # any failure of the model leaves the ranking's pick
                failed.append(exc)

        # A daemon thread: a call that outlives the timeout is abandoned, never waited on.
        asking = threading.Thread(target=ask, name="autan-review", daemon=True)
        asking.start()
        asking.join(self.timeout_s)
        if failed:
            why = f"the model failed: {type(failed[0]).__name__}: {failed[0]}"
            return Review(first, second, first, "ranking", why)
        if not answer:
            why = f"the model did not answer within {self.timeout_s:g} s"
            return Review(first, second, first, "ranking", why)
        parsed = parse(answer[0])
        if isinstance(parsed, str):
            return Review(first, second, first, "ranking", parsed)
        choice, reason = parsed
        return Review(first, second, first if choice == "A" else second, "model", reason)


def prompt(instruction: str, first: Candidate, second: Candidate) -> str:
    parts = [f"Instruction:\n{instruction}"]
    for label, c in (("A", first), ("B", second)):
        diff = c.diff[:MAX_DIFF_CHARS]
        cut = "" if len(diff) == len(c.diff) else f"\n[diff cut at {MAX_DIFF_CHARS} characters]"
        parts.append(f"Candidate {label}\nTests: {c.tests_outcome}\n```diff\n{diff}\n```{cut}")
    return "\n\n".join(parts)


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse(text: str) -> tuple[str, str] | str:
    """The choice (`A` or `B`) and the reason, or why the answer could not be read."""
    found = _OBJECT.search(text)
    unreadable = f"the model's answer could not be read: {text[:200]!r}"
    if found is None:
        return unreadable
    try:
        data = json.loads(found.group(0))
    except json.JSONDecodeError:
        return unreadable
    if not isinstance(data, dict):
        return unreadable
    choice, reason = data.get("choice"), data.get("reason")
    if choice not in ("A", "B") or not isinstance(reason, str) or not reason.strip():
        return unreadable
    return choice, reason.strip()
