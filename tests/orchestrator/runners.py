"""A runner for the tests that acts out a JSON script given as the task's instruction.

It runs inside real worker processes, so what it does is steered by the task
itself. Keys (all optional): `steps` (events to emit), `record` (a file to which
each run appends "attempt_id number pid"), `wait_for` (a path: block until it
exists), `then_steps` (events emitted after it, with the pid),
`command` (argv run as a child process until it ends or the attempt
stops; its pid goes to `pidfile`), `commit` (pinned on the task), `fail` (a reason;
with `partial`, the diff, tokens and cost go with it), `crash` (raise a bug),
`diff`, `summary`, `verified` (true unless given), `tests` (a verdict), `tokens`; `by_attempt` maps an attempt number
to keys that override the rest for that attempt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome


def script_of(ctx: AttemptContext) -> dict[str, Any]:
    try:
        script: dict[str, Any] = json.loads(ctx.task.instruction)
    except ValueError:
        return {}
    script.update(script.pop("by_attempt", {}).get(str(ctx.number), {}))
    return script


def _partial(script: dict[str, Any]) -> AttemptOutcome:
    tokens = script.get("tokens", 0)
    return AttemptOutcome(
        diff=script.get("diff", ""),
        tokens_in=tokens,
        tokens_out=tokens,
        cost_usd=script.get("cost", 0.0),
        partial=True,
    )


class ScriptedRunner:
    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        script = script_of(ctx)
        if commit := script.get("commit"):
            ctx.pin(commit)
        if record := script.get("record"):
            with open(record, "a") as f:
                f.write(f"{ctx.attempt_id} {ctx.number} {os.getpid()}\n")
        for i in range(script.get("steps", 1)):
            ctx.emit("model.message", {"text": f"step {i + 1}"})
        self._wait_then_emit(ctx, script)
        if command := script.get("command"):
            self._run_command(ctx, command, script.get("pidfile"))
        if reason := script.get("fail"):
            raise AttemptFailed(reason, _partial(script) if script.get("partial") else None)
        if script.get("crash"):
            raise ZeroDivisionError("scripted crash")
        ctx.phase("verifying")
        tokens = script.get("tokens", 0)
        return AttemptOutcome(
            summary=script.get("summary", f"attempt {ctx.number} done"),
            diff=script.get("diff", ""),
            verified=script.get("verified", True),
            tests_outcome=script.get("tests_outcome"),
            tests=script.get("tests"),
            tokens_in=tokens,
            tokens_out=tokens,
            cost_usd=script.get("cost", 0.0),
        )

    @staticmethod
    def _wait_then_emit(ctx: AttemptContext, script: dict[str, Any]) -> None:
        if wait_for := script.get("wait_for"):
            while not Path(wait_for).exists():
                if ctx.stop.wait(0.05):
                    raise AttemptFailed("stopped while waiting")
        for i in range(script.get("then_steps", 0)):
            # Which process made it: the chaos tests tell a stale run's events apart by it.
            ctx.emit("model.message", {"text": f"then {i + 1}", "pid": os.getpid()})

    @staticmethod
    def _run_command(ctx: AttemptContext, argv: list[str], pidfile: str | None) -> None:
        process = subprocess.Popen(argv, start_new_session=True)
        if pidfile:
            Path(pidfile).write_text(str(process.pid))
        while process.poll() is None:
            if ctx.stop.wait(0.05):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise AttemptFailed("stopped; its command was killed")
