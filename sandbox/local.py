"""The `local` backend: a plain copy and host processes; NO isolation, for development only."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from sandbox import process
from sandbox.base import Change, ExecResult, OnOutput
from sandbox.bwrap import BASE_ENV
from sandbox.config import SandboxConfig
from sandbox.diff import Budget, Changes, prune, read_entry, same_entry, unified_diff
from sandbox.errors import SandboxClosed, SandboxStartFailed
from sandbox.network import NetworkConfig, OnConnection
from sandbox.paths import clean, list_beneath, read_beneath, write_beneath

log = logging.getLogger(__name__)


def _files(root: Path, exclude: set[str], git_names: list[str]) -> Iterator[str]:
    """Regular files and symlinks under `root`, without `exclude` (top level) and git's names."""
    for dirpath, dirnames, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else f"{rel}/"
        for name in prune(prefix, dirnames, files, exclude, git_names):
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield prefix + name


class LocalSandbox:
    """Commands run as the worker's own user on the host: anything they do, they really do."""

    def __init__(
        self,
        base: Path,
        config: SandboxConfig | None = None,
        on_connection: OnConnection | None = None,  # nothing to report: no proxy, no isolation
    ) -> None:
        self.config = config or SandboxConfig(backend="local")
        self.base = base.resolve()
        if not self.base.is_dir():
            raise SandboxStartFailed(f"base tree {self.base} is not a directory")
        log.warning(
            "UNISOLATED SANDBOX: the local backend runs commands as this user on this host, "
            "with no network, file-system or resource isolation. Use it for development only."
        )
        self.id = uuid.uuid4().hex[:16]
        self.dir = self.config.root.resolve() / self.id
        self.dir.mkdir(parents=True)
        self._lock = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.workspace = self.dir / "workspace"
        # Hard links in the base (a snapshot links identical files to one blob) must not
        # survive the copy, or a write to one path would change its twins.
        copy = [
            "cp",
            "-a",
            "--no-preserve=links",
            "--reflink=auto",
            f"{self.base}/.",
            str(self.workspace),
        ]
        self.workspace.mkdir()
        subprocess.run(copy, check=True, capture_output=True)
        self._closing = threading.Event()

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
        network: NetworkConfig | None = None,  # ignored: the host's network, whatever the policy
    ) -> ExecResult:
        if self._closing.is_set():
            raise SandboxClosed(f"sandbox {self.id} is closed")
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        limits = self.config.limits
        outcome = process.run(
            argv,
            env={**BASE_ENV, "HOME": str(self.workspace), **(env or {})},
            stdin=stdin,
            timeout=limits.timeout_s if timeout is None else timeout,
            output_limit=limits.output_limit if output_limit is None else output_limit,
            on_output=on_output,
            stops=[self._closing, *([stop] if stop else [])],
            cwd=str(self.workspace / clean(cwd)),
        )
        return ExecResult(
            exit_code=outcome.exit_code,
            stdout=outcome.stdout.decode(errors="replace"),
            stderr=outcome.stderr.decode(errors="replace"),
            duration_s=outcome.duration_s,
            truncated=outcome.truncated,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled,
            limits_enforced=False,
        )

    def _root_fd(self) -> int:
        if self._closing.is_set():
            raise SandboxClosed(f"sandbox {self.id} is closed")
        return os.open(self.workspace, os.O_PATH | os.O_DIRECTORY)

    def read_file(self, path: str) -> bytes:
        fd = self._root_fd()
        try:
            return read_beneath(fd, clean(path), limit=self.config.max_file_bytes)
        finally:
            os.close(fd)

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        fd = self._root_fd()
        try:
            write_beneath(fd, clean(path), data, mode)
        finally:
            os.close(fd)

    def list_files(self, path: str = ".") -> list[str]:
        fd = self._root_fd()
        try:
            return list_beneath(fd, clean(path))
        finally:
            os.close(fd)

    def open_tree(self) -> int:
        return self._root_fd()

    def as_owner(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the worker's own user owns an unisolated copy

    def changed_paths(self) -> list[Change]:
        """Compares every file of both trees: its cost grows with the repository."""
        return self._changes().changes

    def _budget(self) -> Budget:
        return Budget(self.config.max_file_bytes, self.config.max_diff_bytes)

    def _changes(self) -> Changes:
        exclude = set(self.config.exclude)
        names: list[str] = []
        base_names: list[str] = []
        new = set(_files(self.workspace, exclude, names))
        old = set(_files(self.base, exclude, base_names))
        lower, upper = self._fds()
        budget = self._budget()
        try:
            found = [Change(p, "added") for p in new - old]
            found += [Change(p, "deleted") for p in old - new]
            found += [
                Change(p, "modified") for p in new & old if not same_entry(lower, upper, p, budget)
            ]
        finally:
            os.close(lower)
            os.close(upper)
        git_names = sorted(set(names) - set(base_names))
        return Changes(sorted(found, key=lambda c: c.path), git_names)

    def _fds(self) -> tuple[int, int]:
        upper = self._root_fd()
        return os.open(self.base, os.O_PATH | os.O_DIRECTORY), upper

    def diff(self) -> str:
        changes, budget = self._changes(), self._budget()
        lower, upper = self._fds()
        try:
            return unified_diff(
                changes,
                lambda p: read_entry(lower, p, budget),
                lambda p: read_entry(upper, p, budget),
            )
        finally:
            os.close(lower)
            os.close(upper)

    def close(self) -> None:
        self._closing.set()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
