"""A person's message reaches the running agent: read from the store before the next model call,
sent to the scripted model once, in order, only to the attempts it was meant for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator import messages
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.base import AttemptFailed
from orchestrator.executor import AttemptExecutor
from orchestrator.models import Event
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent.bugs import BUGS
from tests.agent.conftest import attempt_context

Serve = Callable[[Script], ScriptedServer]
BASH = {"tool_calls": [{"name": "bash", "arguments": {"command": "true"}}]}


BashModel = Callable[[int], tuple[ScriptedServer, AgentRunnerSettings]]


@pytest.fixture
def bash_model(serve: Serve, runner_settings: Callable[..., AgentRunnerSettings]) -> BashModel:
    """A model that runs `true` at every step, and runner settings that stop after `steps`."""

    def make(steps: int) -> tuple[ScriptedServer, AgentRunnerSettings]:
        server = serve(Script.model_validate({"fallback": BASH}))
        settings = runner_settings(server.url)
        settings.agent.max_steps = steps
        return server, settings

    return make


def _said(request: dict[str, Any], text: str) -> int:
    """How many user messages of the request carry `text`."""
    return sum(text in (m.get("content") or "") for m in request["messages"] if m["role"] == "user")


def test_a_message_sent_mid_run_is_in_the_next_request_once_and_in_order(
    repos: dict[str, Path], bash_model: BashModel, services: Services
) -> None:
    server, settings = bash_model(3)
    spec = TaskSpec(repo=str(repos["add"]), instruction=BUGS[0].task, attempts=2)
    task, _ = services.lifecycle.submit(spec)
    first, second = sorted(task.attempts, key=lambda a: a.number)
    ctx, seen = attempt_context(repos["add"], BUGS[0].task)

    def emit(kind: str, data: dict[str, Any]) -> None:
        seen.events.append((kind, data))
        if kind == "tool.call" and len(seen.of("tool.call")) == 1:  # a person, mid-run
            for text, attempt in (("use tabs", None), ("not you", 2), ("and tests", 1)):
                messages.say(services.lifecycle, task.id, text=text, by="alice", attempt=attempt)

    ctx = replace(
        ctx, attempt_id=first.id, emit=emit,
        inbox=messages.Inbox(services.sessions, task.id, first.id),
    )  # fmt: skip
    with pytest.raises(AttemptFailed, match="step budget of 3"):
        AgentRunner(settings).run(ctx)

    assert len(server.requests) == 3
    assert [_said(r, "use tabs") for r in server.requests] == [0, 1, 1]
    assert [_said(r, "and tests") for r in server.requests] == [0, 1, 1]
    assert all(_said(r, "not you") == 0 for r in server.requests)
    said = [m for m in server.requests[1]["messages"] if m["role"] == "user"][-1]["content"]
    assert said.index("use tabs") < said.index("and tests") and "alice" in said
    with services.sessions() as session:
        stored = list(session.scalars(select(Event).where(Event.kind == messages.KIND)))
    mine = [e.seq for e in stored if e.attempt_id in (None, first.id)]
    assert [(d["seq"], d["step"]) for d in seen.of(messages.DELIVERED)] == [(s, 2) for s in mine]
    assert second.id not in {e.attempt_id for e in stored if e.seq in mine}


def test_a_worker_gives_a_message_sent_while_queued_to_the_first_model_call(
    repos: dict[str, Path], bash_model: BashModel, services: Services
) -> None:
    server, settings = bash_model(2)
    task, _ = services.lifecycle.submit(TaskSpec(repo=str(repos["add"]), instruction="fix add"))
    sent = messages.say(services.lifecycle, task.id, text="the bug is in lib.py", by="bob")
    executor = AttemptExecutor(services.lifecycle, AgentRunner(settings), "w1")
    assert executor.execute(task.attempts[0].id) == "failed"
    assert [_said(r, "the bug is in lib.py") for r in server.requests] == [1, 1]
    with services.sessions() as session:
        delivered = session.scalars(select(Event).where(Event.kind == messages.DELIVERED)).all()
    assert [(e.attempt_id, e.data) for e in delivered] == [
        (task.attempts[0].id, {"seq": sent.seq, "step": 1})
    ]
