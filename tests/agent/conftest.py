"""Fixtures: generated bug repositories, scripted model servers, runner settings, a context."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent import AgentConfig
from orchestrator.agent_runner import AgentRunnerSettings
from orchestrator.base import AttemptContext
from orchestrator.baselines import StoreBaselines
from orchestrator.config import OrchestratorSettings
from orchestrator.db import PoolConfig, make_engine, make_sessionmaker, migrate
from orchestrator.models import utcnow
from orchestrator.schemas import TaskView
from serving.script import Script
from serving.scripted import ScriptedServer, start_in_thread
from tests.agent.bugs import BUGS, make_repo
from tests.agent.workers import AgentWorkers, runner_env

VENV_BIN = str(Path(sys.executable).parent)
"""Where `python` has pytest: put first on PATH inside the sandboxes."""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the store is not what these tests are about."""
    return f"sqlite:///{tmp_path / 'autan.db'}"


@pytest.fixture
def baselines(database_url: str) -> Iterator[StoreBaselines]:
    """Baselines in a real, migrated store, as the runner keeps them in a worker."""
    engine = make_engine(database_url, PoolConfig())
    migrate(engine)
    yield StoreBaselines(make_sessionmaker(engine))
    engine.dispose()


@pytest.fixture(scope="session")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bug's repository, made once: the runner only ever reads them."""
    root = tmp_path_factory.mktemp("repos")
    return {bug.name: make_repo(root, bug) for bug in BUGS}


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        started.append(start_in_thread(script))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def agent_config(**overrides: Any) -> AgentConfig:
    return AgentConfig(path=[VENV_BIN], test_timeout_s=60, command_timeout_s=60, **overrides)


@pytest.fixture
def runner_settings(tmp_path: Path) -> Callable[..., AgentRunnerSettings]:
    def make(url: str, **overrides: Any) -> AgentRunnerSettings:
        values: dict[str, Any] = {
            "model_url": url,
            "model_name": "scripted",
            "sandbox_backend": "local",
            "sandbox_root": tmp_path / "sandboxes",
            "trees_dir": tmp_path / "trees",
            "trajectory_dir": tmp_path / "trajectories",
            "data_dir": tmp_path / "data",
            "agent": agent_config(),
        }
        return AgentRunnerSettings(**{**values, **overrides})

    return make


@dataclass
class Recorder:
    """A real AttemptContext whose events and phases are kept in lists."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]


def attempt_context(
    repo: Path | str, instruction: str, number: int = 1, stop: threading.Event | None = None
) -> tuple[AttemptContext, Recorder]:
    now = utcnow()
    task = TaskView.model_validate(
        {
            "id": "t1", "state": "running", "reason": None, "repo": str(repo), "ref": None,
            "instruction": instruction, "attempts_requested": 1, "idempotency_key": None,
            "origin": {"kind": "cli", "external_id": None, "data": {}}, "created_at": now,
            "started_at": now, "finished_at": None, "attempts": [], "result": None,
        }
    )  # fmt: skip
    recorder = Recorder()
    ctx = AttemptContext(
        task=task,
        attempt_id=f"a{number}",
        number=number,
        emit=lambda kind, data: recorder.events.append((kind, data)),
        phase=recorder.phases.append,
        stop=stop or threading.Event(),
    )
    return ctx, recorder


@pytest.fixture
def agent_workers(settings: OrchestratorSettings, tmp_path: Path) -> Iterator[AgentWorkers]:
    logs = tmp_path / "agent-worker-logs"
    logs.mkdir()
    pool = AgentWorkers(settings, logs, runner_env(tmp_path, VENV_BIN))
    yield pool
    pool.stop_all()
