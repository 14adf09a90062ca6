"""Real Celery worker processes for the tests, started like `autan worker` is, and killed for real."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from cli.processes import spawn
from orchestrator.config import OrchestratorSettings

ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings: OrchestratorSettings) -> dict[str, str]:
    """The environment that makes a child process read these same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTAN_")}
    for name, value in settings.model_dump().items():
        if value is not None:  # unset: the child's default, not the text "None"
            env[f"AUTAN_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


class WorkerPool:
    def __init__(self, settings: OrchestratorSettings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}
        """Settings beside the orchestrator's, such as the agent runner's `AUTAN_MODEL_URL`."""

    def start(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        env = settings_env(self.settings) | self.env
        env["AUTAN_WORKER_CONCURRENCY"] = str(concurrency)
        # Its own process group, so kill() takes the pool children too; and it dies with
        # the test run, even one killed without its teardown.
        log = self.logs / f"worker-{len(self.processes)}.log"
        process = spawn("worker", [sys.executable, "-m", "orchestrator"], log, env=env).process
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children at once: no goodbye, no ack."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)
        self.processes.clear()

    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log"))
        )
