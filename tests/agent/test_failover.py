"""Model faults during real attempts: a dead endpoint, one that dies, an outage, two attempts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator import store
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.base import AttemptFailed, AttemptOutcome
from orchestrator.baselines import StoreBaselines
from orchestrator.db import PoolConfig, make_engine, make_sessionmaker, migrate
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from serving.script import Script
from serving.scripted import ScriptedServer, start_in_thread
from tests.agent.bugs import BUGS, Bug
from tests.agent.conftest import Recorder, agent_config, attempt_context
from tests.agent.policies import finish, rule
from tests.agent.workers import AgentWorkers
from tests.live import free_port
from tests.serving.flaky import FlakyServer
from tests.waiting import wait_until

Serve = Callable[[Script], ScriptedServer]
Settings = Callable[..., AgentRunnerSettings]
BUG = BUGS[0]
OUTAGE_S = 3.0
"""How long the only endpoint stays down; production waits out up to AUTAN_MODEL_OUTAGE_S."""
WORKER_OUTAGE_S = 4.5
"""Longer than the test settings' heartbeat timeout (3 s): a silent worker would lose it."""


def careful(bug: Bug, delay_ms: int = 0) -> Script:
    """Four model calls: read, fix, run the tests, finish; enough for an endpoint to die midway."""
    edit = {"path": "lib.py", "old": bug.old, "new": bug.new}
    return Script.model_validate(
        {
            "rules": [
                rule({"tool_name": "bash"}, finish(f"fixed {bug.name}")),
                rule({"tool_name": "edit_file"}, ("bash", {"command": "git diff --stat"})),
                rule({"tool_name": "read_file"}, ("edit_file", edit)),
                rule({"turn": 0}, ("read_file", {"path": "lib.py"})),
            ],
            "delay_ms": delay_ms,
        }
    )


@pytest.fixture
def relay() -> Iterator[Callable[..., FlakyServer]]:
    """A stand-in endpoint in front of a scripted server, which dies as planned."""
    started: list[FlakyServer] = []

    def start(upstream: str, **plan: Any) -> FlakyServer:
        server = FlakyServer(name="relay", upstream=upstream, **plan)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def attempt(runner: AgentRunner, repo: Path, number: int = 1) -> tuple[AttemptOutcome, Recorder]:
    ctx, seen = attempt_context(repo, BUG.task, number)
    return runner.run(ctx), seen


def steps(seen: Recorder) -> list[int]:
    return [m["step"] for m in seen.of("model.message")]


@pytest.fixture(scope="module")
def unfaulted(repos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> AttemptOutcome:
    """The attempt with no fault, run once: what every faulted run must end with."""
    tmp = tmp_path_factory.mktemp("unfaulted")
    engine = make_engine(f"sqlite:///{tmp / 'autan.db'}", PoolConfig())
    migrate(engine)
    server = start_in_thread(careful(BUG))
    settings = AgentRunnerSettings(
        model_url=server.url, model_name="scripted", sandbox_backend="local",
        sandbox_root=tmp / "sandboxes", trees_dir=tmp / "trees", agent=agent_config(),
    )  # fmt: skip
    try:
        runner = AgentRunner(settings, baselines=StoreBaselines(make_sessionmaker(engine)))
        outcome, seen = attempt(runner, repos[BUG.name])
    finally:
        server.stop()
        engine.dispose()
    assert outcome.verified is True and steps(seen) == [1, 2, 3, 4]
    return outcome


def test_a_dead_first_endpoint_is_passed_over(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    unfaulted: AttemptOutcome,
) -> None:
    server = serve(careful(BUG))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    runner = AgentRunner(runner_settings(f"{dead},{server.url}"), baselines=baselines)
    outcome, seen = attempt(runner, repos[BUG.name])
    assert outcome.verified is True
    assert outcome.diff == unfaulted.diff
    assert steps(seen) == [1, 2, 3, 4]
    assert len(server.requests) == 4
    assert seen.phases == ["verifying"]  # another endpoint answered: no wait
    assert [s["up"] for s in runner.router.status()] == [False, True]


def test_an_endpoint_that_dies_mid_attempt_hands_over_to_another(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    relay: Callable[..., FlakyServer],
    unfaulted: AttemptOutcome,
) -> None:
    server = serve(careful(BUG))
    dying = relay(server.url, die_after=1)  # answers one call, then refuses every connection
    runner = AgentRunner(runner_settings(f"{dying.url},{server.url}"), baselines=baselines)
    outcome, seen = attempt(runner, repos[BUG.name])
    assert outcome.verified is True
    assert outcome.diff == unfaulted.diff
    assert dying.answered == 1 and dying.down
    assert len(dying.chat_requests) > 1  # the call it no longer answered went elsewhere
    assert steps(seen) == [1, 2, 3, 4]  # each step recorded once, retried call or not
    assert len(server.requests) == 4
    assert seen.phases == ["verifying"]
    assert "model.waiting" not in seen.kinds()


@pytest.mark.parametrize("down_s", [OUTAGE_S, pytest.param(30.0, marks=pytest.mark.slow, id="30s")])
def test_an_outage_of_the_only_endpoint_pauses_the_attempt(
    down_s: float,
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    relay: Callable[..., FlakyServer],
    unfaulted: AttemptOutcome,
) -> None:
    server = serve(careful(BUG))
    only = relay(server.url, die_after=2, down_for_s=down_s)
    runner = AgentRunner(runner_settings(only.url, model_outage_s=120), baselines=baselines)
    outcome, seen = attempt(runner, repos[BUG.name])
    assert only.came_back.is_set()
    assert outcome.verified is True
    assert outcome.diff == unfaulted.diff
    assert steps(seen) == [1, 2, 3, 4]
    assert len(server.requests) == 4  # the calls refused during the outage never reached it
    assert seen.phases == ["waiting_model", "running", "verifying"]
    waiting, resumed = seen.of("model.waiting"), seen.of("model.resumed")
    assert len(waiting) == 1 and len(resumed) == 1
    assert waiting[0]["limit_s"] == 120 and "no model endpoint answered" in waiting[0]["reason"]
    kinds = seen.kinds()
    assert kinds.index("model.waiting") < kinds.index("model.resumed")
    # Paused after the second step's tools ran, resumed with the third step.
    assert [k for k in kinds if k.startswith("model.")][1:4] == [
        "model.message",
        "model.waiting",
        "model.resumed",
    ]


def test_an_outage_past_the_limit_ends_the_attempt_saying_so(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    relay: Callable[..., FlakyServer],
) -> None:
    server = serve(careful(BUG))
    only = relay(server.url, die_after=1)
    runner = AgentRunner(runner_settings(only.url, model_outage_s=1), baselines=baselines)
    ctx, seen = attempt_context(repos[BUG.name], BUG.task)
    with pytest.raises(AttemptFailed, match=r"model was unreachable for 1s, past the outage limit"):
        runner.run(ctx)
    assert steps(seen) == [1]
    assert seen.phases == ["waiting_model"]
    assert len(seen.of("model.waiting")) == 1 and seen.of("model.resumed") == []


def test_two_attempts_at_once_use_both_endpoints(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    unfaulted: AttemptOutcome,
) -> None:
    first, second = serve(careful(BUG, delay_ms=100)), serve(careful(BUG, delay_ms=100))
    runner = AgentRunner(runner_settings(f"{first.url},{second.url}"), baselines=baselines)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: attempt(runner, repos[BUG.name]), range(2)))
    for outcome, seen in runs:
        assert outcome.verified is True and outcome.diff == unfaulted.diff
        assert steps(seen) == [1, 2, 3, 4]
    assert len(first.requests) + len(second.requests) == 8
    assert first.requests and second.requests
    assert [s["outstanding"] for s in runner.router.status()] == [0, 0]


def test_spread_by_attempt_keeps_each_attempt_to_its_endpoint_while_it_is_up(
    repos: dict[str, Path],
    serve: Serve,
    runner_settings: Settings,
    baselines: StoreBaselines,
    unfaulted: AttemptOutcome,
) -> None:
    first, second = serve(careful(BUG)), serve(careful(BUG))
    runner = AgentRunner(
        runner_settings(f"{first.url},{second.url}", model_spread="attempt"), baselines=baselines
    )
    for number in (1, 2):
        outcome, _ = attempt(runner, repos[BUG.name], number)
        assert outcome.diff == unfaulted.diff
    assert (len(first.requests), len(second.requests)) == (4, 4)

    dead = f"http://127.0.0.1:{free_port()}/v1"
    runner = AgentRunner(
        runner_settings(f"{second.url},{dead}", model_spread="attempt"), baselines=baselines
    )
    outcome, seen = attempt(runner, repos[BUG.name], number=2)
    assert outcome.verified is True and steps(seen) == [1, 2, 3, 4]
    assert len(second.requests) == 8


@pytest.mark.slow
def test_a_worker_shows_the_wait_keeps_its_lease_and_resumes(
    repos: dict[str, Path],
    serve: Serve,
    services: Services,
    agent_workers: AgentWorkers,
    relay: Callable[..., FlakyServer],
    unfaulted: AttemptOutcome,
) -> None:
    server = serve(careful(BUG))
    only = relay(server.url, die_after=2, down_for_s=WORKER_OUTAGE_S)
    agent_workers.start(only.url)
    spec = TaskSpec(repo=str(repos[BUG.name]), instruction=BUG.task)
    task_id = services.lifecycle.submit(spec)[0].id

    def waiting() -> bool:
        return services.lifecycle.get(task_id).attempts[0].state == AttemptState.WAITING_MODEL

    wait_until(waiting, timeout=60, what=f"the attempt to wait\n{agent_workers.output()}")
    wait_until(lambda: services.lifecycle.get(task_id).state.terminal, timeout=90)
    task = services.lifecycle.get(task_id)
    assert only.came_back.is_set()
    assert task.state == TaskState.SUCCEEDED, agent_workers.output()
    (attempt,) = task.attempts
    assert attempt.state == AttemptState.SUCCEEDED
    assert attempt.runs == 1  # its heartbeats went on: never taken for dead and run again
    assert attempt.result is not None and attempt.result.diff == unfaulted.diff
    with services.sessions() as session:
        events = store.events_after(session, task_id=task_id, seq=0)
        states = [e.data["state"] for e in events if e.kind == "attempt.state"]
        kinds = [e.kind for e in events]
    assert states[-4:] == ["waiting_model", "running", "verifying", "succeeded"]
    assert kinds.count("model.waiting") == 1 and kinds.count("model.resumed") == 1
    assert [k for k in kinds if k == "model.message"] == ["model.message"] * 4
