"""Continuing a finished task with the scripted model: the new sandbox starts with the earlier
diff applied, the model's first request carries the earlier conversation and then the new
instruction, and the new diff (against the same base commit) holds both changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import continuation
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.baselines import StoreBaselines
from orchestrator.executor import AttemptExecutor
from orchestrator.schemas import OriginSpec, TaskSpec
from orchestrator.services import Services
from orchestrator.store import Lineage
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent.policies import finish, rule

FIRST = "[first] Start a notes file."
SECOND = "[second] Add a second line to the notes."


def _bash(command: str) -> tuple[str, dict[str, Any]]:
    return ("bash", {"command": command})


def _script() -> Script:
    return Script.model_validate(
        {
            "rules": [
                rule({"user_contains": "[second]", "turn": 0}, _bash("cat notes.txt")),
                rule({"user_contains": "[second]", "turn": 1}, _bash("echo second >> notes.txt")),
                rule({"user_contains": "[second]", "turn": 2}, finish("added the second line")),
                rule({"turn": 0}, _bash("echo first > notes.txt"), content="Writing the notes."),
                rule({"turn": 1}, finish("started the notes")),
            ]
        }
    )


def _user_text(request: dict[str, Any]) -> str:
    return "\n".join(m.get("content") or "" for m in request["messages"] if m["role"] == "user")


def test_a_continuation_starts_from_the_earlier_diff_and_conversation(
    repos: dict[str, Path],
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
    services: Services,
) -> None:
    server = serve(_script())
    runner = AgentRunner(runner_settings(server.url), baselines=StoreBaselines(services.sessions))
    executor = AttemptExecutor(services.lifecycle, runner, "w1")
    first, _ = services.lifecycle.submit(TaskSpec(repo=str(repos["add"]), instruction=FIRST))
    executor.execute(first.attempts[0].id)
    first = services.lifecycle.get(first.id)
    assert first.state.terminal and first.commit is not None
    earlier = first.attempts[0].result
    assert earlier is not None and "+first" in earlier.diff and "notes.txt" in earlier.diff
    asked_before = len(server.requests)

    later = continuation.continue_task(
        services.lifecycle, first.id, instruction=SECOND, origin=OriginSpec(kind="cli")
    )
    assert later.continued_from is not None
    assert (later.continued_from.task, later.continued_from.attempt) == (first.id, 1)
    assert (later.repo, later.commit, later.start_patch) == (first.repo, first.commit, earlier.diff)
    assert later.instruction == SECOND and later.state == "queued"
    assert services.lifecycle.get(first.id).continued_as == [later.id]

    executor.execute(later.attempts[0].id)
    done = services.lifecycle.get(later.id)
    assert done.state.terminal, done.reason
    requests = server.requests[asked_before:]
    said = _user_text(requests[0])
    # The earlier instruction, what the model did, then the new instruction, in that order.
    assert said.index(FIRST) < said.index("echo first > notes.txt") < said.index(SECOND)
    assert "Writing the notes." in said and "started the notes" in said
    # The sandbox started with the earlier diff applied: `cat` saw the first line.
    cat = [m for m in requests[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "first" in cat, cat
    result = done.attempts[0].result
    assert result is not None, done.reason
    notes = result.diff[result.diff.index("notes.txt") :]
    assert "+first" in notes and "+second" in notes
    assert done.commit == first.commit


def test_a_starting_patch_that_does_not_apply_fails_the_attempt_saying_why(
    repos: dict[str, Path],
    serve: Callable[[Script], ScriptedServer],
    runner_settings: Callable[..., AgentRunnerSettings],
    services: Services,
) -> None:
    server = serve(_script())
    runner = AgentRunner(runner_settings(server.url), baselines=StoreBaselines(services.sessions))
    bad = "--- a/missing.py\n+++ b/missing.py\n@@ -1 +1 @@\n-old\n+new\n"
    task, _ = services.lifecycle.submit(
        TaskSpec(repo=str(repos["add"]), instruction=SECOND),
        lineage=Lineage(continued_from_task="t0", continued_from_attempt=1, start_patch=bad),
    )
    assert (
        AttemptExecutor(services.lifecycle, runner, "w1").execute(task.attempts[0].id) == "failed"
    )
    attempt = services.lifecycle.get(task.id).attempts[0]
    assert attempt.reason is not None
    assert attempt.reason.startswith("the starting patch does not apply to the base: ")
    assert "missing.py" in attempt.reason
    assert server.requests == []  # the agent never started


def test_the_conversation_keeps_the_newest_steps_within_its_limit() -> None:
    steps = [f"tool call bash: step {n} " + "x" * 1000 for n in range(100)]
    text = continuation.conversation("the first ask", steps, "did it")
    assert len(text) <= continuation.CONVERSATION_CHARS
    assert text.startswith("The earlier instruction:\nthe first ask\n\nWhat was done:\n(")
    assert text.endswith("The earlier summary:\ndid it")
    kept = [n for n in range(100) if f"step {n} " in text]
    assert kept == list(range(100 - len(kept), 100)) and 10 < len(kept) < 100
    assert f"({100 - len(kept)} earlier step(s) left out)" in text
    whole = continuation.conversation("ask", ["assistant: hi"], "")
    assert whole == "The earlier instruction:\nask\n\nWhat was done:\nassistant: hi\n\n" + (
        "The earlier summary:\n(none)"
    )
