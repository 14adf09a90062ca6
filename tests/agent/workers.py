"""Worker processes that run the real agent runner, pointed at scripted model servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli.processes import spawn
from orchestrator.config import OrchestratorSettings
from tests.workers import WorkerPool, settings_env


class AgentWorkers(WorkerPool):
    """Like WorkerPool, with `AUTAN_RUNNER=agent` and the runner's own AUTAN_ settings."""

    def __init__(
        self, settings: OrchestratorSettings, logs: Path, runner_env: dict[str, str]
    ) -> None:
        super().__init__(settings.model_copy(update={"runner": "agent"}), logs)
        self.runner_env = runner_env

    def start(self, model_url: str = "", concurrency: int = 1) -> subprocess.Popen[bytes]:  # type: ignore[override]
        env = {**settings_env(self.settings), **self.runner_env, "AUTAN_MODEL_URL": model_url}
        env["AUTAN_WORKER_CONCURRENCY"] = str(concurrency)
        log = self.logs / f"worker-{len(self.processes)}.log"
        process = spawn("worker", [sys.executable, "-m", "orchestrator"], log, env=env).process
        self.processes.append(process)
        return process


def runner_env(tmp: Path, venv_bin: str) -> dict[str, str]:
    return {
        "AUTAN_MODEL_NAME": "scripted",
        # Attempt n on the n-th URL: how a test gives each attempt of one task its own policy.
        "AUTAN_MODEL_SPREAD": "attempt",
        "AUTAN_SANDBOX_BACKEND": "local",
        "AUTAN_SANDBOX_ROOT": str(tmp / "sandboxes"),
        "AUTAN_TREES_DIR": str(tmp / "trees"),
        "AUTAN_AGENT__PATH": json.dumps([venv_bin]),
        "AUTAN_AGENT__TEST_TIMEOUT_S": "60",
    }
