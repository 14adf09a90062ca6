"""The children of `autan up`: each in its own process group, dying with us, stopped in steps."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str]
    env: dict[str, str] | None
    started: float = field(default_factory=time.monotonic)
    """When this process started (monotonic): a child that lived long gets its back-off reset."""
    restarts: int = 0
    """Deaths in a row without a long enough life between them."""

    def tail(self, lines: int) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    """Start `argv` with its output appended to `log`."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,  # its own group: Ctrl-C reaches only us, and we stop it in order
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log, argv, env)


def respawn(child: Child) -> None:
    """Start a dead child again with the same command, environment and log."""
    again = spawn(child.name, child.argv, child.log, child.env)
    child.process, child.started = again.process, again.started


def terminate(children: list[Child], grace_s: float) -> None:
    """SIGTERM, `grace_s` for all to stop, then SIGKILL to each child's whole process group."""
    alive = [c for c in children if c.process.poll() is None]
    for child in alive:
        child.process.terminate()
    deadline = time.monotonic() + grace_s
    for child in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        # The whole group: it also takes pool children that a leader left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()


def _die_with_parent() -> None:
    """In the child before exec: Linux sends it SIGTERM if `autan up` dies without stopping it."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
