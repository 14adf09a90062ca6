"""The loop against the scripted model over HTTP and a real sandbox: bad output, budgets, stops."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import Agent, AgentConfig, ModelFailed, inspect
from sandbox import SandboxConfig, create_sandbox
from sandbox.base import Sandbox
from serving import ClientConfig, CostsConfig, Meter, OpenAIClient, Price, PriceTable
from serving.script import Script
from serving.scripted import ScriptedServer
from tests.agent.bugs import BUGS
from tests.agent.conftest import agent_config
from tests.waiting import wait_until

Serve = Callable[[Script], ScriptedServer]


@pytest.fixture
def sandbox(repos: dict[str, Path], tmp_path: Path) -> Iterator[Sandbox]:
    sbx = create_sandbox(repos["add"], SandboxConfig(backend="local", root=tmp_path / "sbx"))
    yield sbx
    sbx.close()


def run_agent(
    server: ScriptedServer, sandbox: Sandbox, config: AgentConfig | None = None, **kw: Any
) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    with OpenAIClient(ClientConfig(base_url=server.url, model="scripted", max_retries=0)) as model:
        agent = Agent(
            model, sandbox, config=config or agent_config(),
            emit=lambda k, d: events.append((k, d)), **kw,
        )  # fmt: skip
        return agent.run(BUGS[0].task), events


def call(name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def test_bad_model_output_becomes_observations_and_the_run_goes_on(
    serve: Serve, sandbox: Sandbox
) -> None:
    turns: list[dict[str, Any]] = [
        {"tool_calls": [call("bash", '{"command": "ls"')]},  # broken JSON
        {"tool_calls": [call("teleport", {})]},
        {"tool_calls": [call("edit_file", {"path": "lib.py"})]},  # missing arguments
        {"content": ""},
        {"content": "I think it is fine."},
        {
            "content": "long",
            "tool_calls": [call("bash", {"command": "true"})],
            "finish_reason": "length",
        },
        {"tool_calls": [call("edit_file", {"path": "lib.py", "old": "nope", "new": "x"})]},
        {"tool_calls": [call("edit_file", {"path": "lib.py", "old": "return", "new": "x"})]},
        {"tool_calls": [call("read_file", {"path": "lib.py", "start_line": 2, "end_line": 2})]},
        {
            "tool_calls": [
                call("search", {"pattern": "def \\w+", "glob": "*.py"}),
                call("finish", {"summary": "s"}),
            ]
        },
    ]
    server = serve(Script.model_validate({"turns": turns}))
    result, events = run_agent(server, sandbox)
    assert (result.reason, result.summary, result.steps) == ("finished", "s", 10)
    tools = [m for m in result.messages if m.role == "tool"]
    users = [m.content or "" for m in result.messages if m.role == "user"][1:]
    texts = [t.content or "" for t in tools]
    assert "not a valid JSON object" in texts[0]
    assert "no tool named `teleport`" in texts[1] and "edit_file" in texts[1]
    assert "old: Field required" in texts[2] and "new: Field required" in texts[2]
    assert "`old` was not found in lib.py" in texts[3]
    assert "`old` occurs 2 times in lib.py" in texts[4]
    assert texts[5] == "lib.py: lines 2-2 of 6\n     2\t    return a - b"
    assert "lib.py:1:def add(a, b):" in texts[6] and "tests/test_lib.py" in texts[6]
    assert texts[7] == "done"
    assert users[0].startswith("Your reply was empty")
    assert users[1].startswith("Your reply called no tool")
    assert users[2].startswith("Your reply was cut off by the length limit")
    assert sandbox.diff() == ""  # nothing bad was applied
    outputs = [d for k, d in events if k == "tool.output"]
    assert [d["ok"] for d in outputs] == [False] * 5 + [True, True]


def loop_forever() -> Script:
    return Script.model_validate({"fallback": {"tool_calls": [call("bash", {"command": "true"})]}})


@pytest.mark.parametrize(
    ("overrides", "reason", "steps"),
    [
        ({"max_steps": 3}, "budget:steps", 3),
        ({"max_tokens": 5000}, "budget:tokens", 4),
        ({"max_cost_usd": 0.004}, "budget:cost", 3),
        ({"max_wall_s": 0.000001}, "budget:wall_time", 0),
    ],
)
def test_each_budget_ends_the_run_with_its_reason(
    serve: Serve, sandbox: Sandbox, overrides: dict[str, Any], reason: str, steps: int
) -> None:
    prices = PriceTable(
        CostsConfig(prices={"scripted": Price(input_per_mtok=1, output_per_mtok=0)})
    )
    result, _ = run_agent(
        serve(loop_forever()), sandbox, agent_config(**overrides), meter=Meter(prices)
    )
    assert (result.reason, result.steps) == (reason, steps), result.message
    assert result.summary == ""


def test_a_stop_kills_the_running_command_and_ends_the_run(serve: Serve, sandbox: Sandbox) -> None:
    script = {"fallback": {"tool_calls": [call("bash", {"command": "touch started; sleep 60"})]}}
    stop = threading.Event()
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_agent(serve(Script.model_validate(script)), sandbox, stop=stop)
        )
    )
    worker.start()
    wait_until(lambda: "started" in sandbox.list_files(), what="the command to start")
    stop.set()
    worker.join(timeout=30)
    result, events = results[0]
    assert (result.reason, result.steps) == ("cancelled", 1)
    assert [d["limit"] for k, d in events if k == "tool.output"] == ["cancelled"]


def test_the_conversation_is_compacted_near_the_window_keeping_task_and_latest_steps(
    serve: Serve, sandbox: Sandbox
) -> None:
    reads = {"fallback": {"tool_calls": [call("read_file", {"path": "tests/test_lib.py"})]}}
    config = agent_config(context_window=2048, compact_at=0.9, keep_steps=2, max_steps=12)
    result, events = run_agent(serve(Script.model_validate(reads)), sandbox, config)
    assert result.reason == "budget:steps"
    compactions = [d for k, d in events if k == "context.compacted"]
    assert compactions and all(d["dropped"] > 0 for d in compactions)
    task = result.messages[1].content or ""
    assert task.startswith("## The task\n\n" + BUGS[0].task)
    assert "[Earlier steps were removed to fit the context window" in task
    assert task.count("[Earlier steps") == 1
    assert sum(1 for m in result.messages if m.role == "assistant") <= 3


def test_a_model_that_cannot_be_reached_fails_the_run_saying_so(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = ClientConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0)
    with OpenAIClient(config) as model:
        agent = Agent(model, sandbox, config=agent_config(), trajectory=tmp_path / "t.json")
        with pytest.raises(ModelFailed, match="the model failed at step 1: the model endpoint"):
            agent.run("x", inspect(sandbox, 10))
    assert '"reason": "error"' in (tmp_path / "t.json").read_text()
