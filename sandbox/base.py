"""The sandbox seam: one protocol, and the small records its methods return."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sandbox.network import NetworkConfig

OnOutput = Callable[[Literal["stdout", "stderr"], bytes], None]


@dataclass(frozen=True)
class ExecResult:
    """What one command did. `limit` names the limit that ended it, if one did."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False
    timed_out: bool = False
    cancelled: bool = False
    oom_killed: bool = False
    pids_limited: bool = False
    limits_enforced: bool = True

    @property
    def limit(self) -> str | None:
        for name in ("timed_out", "cancelled", "oom_killed", "pids_limited"):
            if getattr(self, name):
                return name
        return None


@dataclass(frozen=True)
class Change:
    """One path that differs from the base tree."""

    path: str
    status: Literal["added", "modified", "deleted"]


class Sandbox(Protocol):
    def exec(
        self,
        command: str | Sequence[str],
        *,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        output_limit: int | None = None,
        on_output: OnOutput | None = None,
        stop: threading.Event | None = None,
        network: NetworkConfig | None = None,
    ) -> ExecResult:
        """Run a command (argv, or a string for `sh -c`); setting `stop` kills its process tree.

        `network` replaces the sandbox's own network policy for this command only (set-up)."""
        ...

    def read_file(self, path: str) -> bytes: ...
    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Write `path`; with no `mode` an existing file keeps its own and a new one is 0644."""
        ...

    def list_files(self, path: str = ".") -> list[str]: ...
    def changed_paths(self) -> list[Change]: ...
    def open_tree(self) -> int:
        """An O_PATH fd of the tree as the sandbox's commands see it; the caller closes it.

        For host-side work beneath it with `sandbox.paths` (openat2, never leaving it)."""
        ...

    def as_owner(self) -> AbstractContextManager[None]:
        """A block in which this thread's host-side writes beneath `open_tree()` are made as
        the sandbox's user (a root worker's own ids have no place in its files). Open the fd
        first; start no thread inside: threads inherit the block's file-system ids."""
        ...

    def diff(self) -> str: ...
    def close(self) -> None: ...
