"""The `autan` command run for real against the live API: in this process, or as a child process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from orchestrator.config import OrchestratorSettings
from tests.live import LiveApi
from tests.workers import ROOT, settings_env


@dataclass(frozen=True)
class Outcome:
    """What a user sees of one command: exit status and both streams."""

    returncode: int
    stdout: str
    stderr: str


def base_env(**values: str) -> dict[str, str]:
    """This process's environment without any AUTAN_ setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTAN_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="200", **values)
    return env


@dataclass
class Autan:
    """Runs `autan ARGS...` with `env`: through the typer app here, or as `python -m cli`."""

    env: dict[str, str]

    def __call__(self, *args: str, **env: str | None) -> Outcome:
        """In this process (fast): the same app, arguments, environment and streams."""
        # Unset what the environment has and `env` does not, so nothing leaks in.
        unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AUTAN_")}
        result = CliRunner().invoke(
            app, list(args), env={**unset, **self.env, **env}, catch_exceptions=False
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def process(self, *args: str, cwd: Path = ROOT, timeout: float = 60, **env: str) -> Outcome:
        """As a child process, the way a shell runs it."""
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**self.env, **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)


def task_id_in(output: str) -> str:
    found = re.search(r"^task ([0-9a-f]{32}) ", output, re.MULTILINE)
    assert found, output
    return found.group(1)


@pytest.fixture
def autan(settings: OrchestratorSettings, live_api: LiveApi) -> Autan:
    """The command pointed at the live API with its admin token, and at its database."""
    env = settings_env(settings)
    env.update(AUTAN_URL=live_api.url, AUTAN_TOKEN=live_api.token, COLUMNS="200")
    return Autan(env)
