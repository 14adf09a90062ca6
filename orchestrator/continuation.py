"""Continuing a finished task: a new task from one attempt's diff, with the conversation so far."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from orchestrator import store
from orchestrator.errors import InvalidSubmission, TaskNotEnded, TaskNotFound
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Event
from orchestrator.schemas import AttemptView, OriginSpec, TaskSpec, TaskView

CONVERSATION_CHARS = 24_000
"""The most of the earlier conversation a continuation carries; the oldest steps go first."""

PROMPT = (Path(__file__).parent / "continue_prompt.md").read_text()


def default_attempt(task: TaskView) -> AttemptView | None:
    """The attempt whose work stands for the task: the kept one, else the best one left."""
    if task.result is not None:
        return next(a for a in task.attempts if a.id == task.result.attempt_id)
    # Nothing kept: the best work left, verified first, whole before partial, then by number.
    ranked = [
        (a.result.verified is not True, a.result.partial, a.number, a)
        for a in task.attempts
        if a.result is not None and a.result.diff
    ]
    return min(ranked, key=lambda r: r[:3])[-1] if ranked else None


def continue_task(
    lifecycle: Lifecycle,
    task_id: str,
    *,
    instruction: str,
    origin: OriginSpec,
    attempt: int | None = None,
    created_by: str | None = None,
) -> TaskView:
    """A new task with `instruction`, continuing the finished task `task_id` from the diff of
    its attempt numbered `attempt` (default: `default_attempt`), on the same base. Raises
    TaskNotEnded, TaskNotFound (no such attempt) or InvalidSubmission (no diff); nothing is
    stored then."""
    task = lifecycle.get(task_id)
    if not task.state.terminal:
        raise TaskNotEnded(
            f"task {task_id} has not finished ({task.state}): send it a message instead, "
            "or continue it once it ends"
        )
    if attempt is not None:
        chosen = next((a for a in task.attempts if a.number == attempt), None)
        if chosen is None:
            raise TaskNotFound(f"task {task_id} has no attempt {attempt}")
    else:
        chosen = default_attempt(task)
        if chosen is None:
            raise InvalidSubmission(f"no attempt of task {task_id} left a diff to continue from")
    if chosen.result is None or not chosen.result.diff:
        raise InvalidSubmission(
            f"attempt {chosen.number} of task {task_id} left no diff to continue from"
        )
    with lifecycle.sessions() as session:
        steps = _steps(session, task_id, chosen.id)
    lineage = store.Lineage(
        continued_from_task=task.id,
        continued_from_attempt=chosen.number,
        commit=task.commit,
        start_patch=chosen.result.diff,
        conversation=conversation(task.instruction, steps, chosen.result.summary),
    )
    spec = TaskSpec(
        repo=task.repo, ref=task.ref, instruction=instruction,
        attempts=task.attempts_requested, origin=origin,
    )  # fmt: skip
    view, _ = lifecycle.submit(spec, created_by=created_by, lineage=lineage)
    return view


def _steps(session: Any, task_id: str, attempt_id: str) -> list[str]:
    """The attempt's model messages and tool calls in words, oldest first."""
    events = session.scalars(
        select(Event)
        .where(
            Event.task_id == task_id,
            Event.attempt_id == attempt_id,
            Event.kind.in_(("model.message", "tool.call")),
        )
        .order_by(Event.seq)
    )
    lines = []
    for event in events:
        if event.kind == "model.message" and event.data.get("text"):
            lines.append(f"assistant: {event.data['text']}")
        elif event.kind == "tool.call":
            arguments = json.dumps(event.data.get("arguments"), ensure_ascii=False)
            lines.append(f"tool call {event.data.get('name')}: {arguments}")
    return lines


def conversation(instruction: str, steps: list[str], summary: str) -> str:
    """The earlier instruction, steps and summary within CONVERSATION_CHARS, oldest steps cut
    first (and said so)."""
    head = f"The earlier instruction:\n{instruction}\n\nWhat was done:\n"
    tail = f"\n\nThe earlier summary:\n{summary or '(none)'}"
    room = CONVERSATION_CHARS - len(head) - len(tail)
    kept: list[str] = []
    for line in reversed(steps):
        if len(line) + 1 > room:
            break
        kept.append(line)
        room -= len(line) + 1
    cut = len(steps) - len(kept)
    note = [f"({cut} earlier step(s) left out)"] if cut else []
    return (head + "\n".join(note + kept[::-1]) + tail)[:CONVERSATION_CHARS]


def instruction_for(task: TaskView) -> str:
    """What the agent is asked: the task's instruction, after the conversation it continues."""
    if task.conversation is None:
        return task.instruction
    return PROMPT.format(conversation=task.conversation, instruction=task.instruction)
