"""The agent's seams: a Tool the loop can offer and call, the sink its events go to, and the
inbox a person's messages come from."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.base import Sandbox
from serving.base import ToolSpec


class Emit(Protocol):
    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        """Record one step: `model.message`, `tool.call`, `tool.output`, `file.change`."""
        ...


@dataclass
class ToolEnv:
    """What a tool works on: the sandbox, the command environment, the stop signal."""

    sandbox: Sandbox
    env: dict[str, str]
    command_timeout_s: float
    output_bytes: int
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Observation:
    """A tool's result: the text for the model and the files it changed (path, status)."""

    text: str
    changes: tuple[tuple[str, str], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    """Extra fields for the `tool.output` event (an exit code, a limit hit)."""


@dataclass(frozen=True)
class Note:
    """A message from a person to the running agent: its place in the task's events, the
    text, and who sent it."""

    seq: int
    text: str
    by: str


class Inbox(Protocol):
    def __call__(self) -> list[Note]:
        """The messages not taken yet, oldest first; each is returned once."""
        ...


def no_notes() -> list[Note]:
    return []


class Tool(Protocol):
    name: str

    def spec(self) -> ToolSpec: ...

    def run(self, arguments: dict[str, Any], env: ToolEnv) -> Observation:
        """Do it; raises ToolFailed with a message for the model when it cannot."""
        ...
