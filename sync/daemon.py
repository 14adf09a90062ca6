"""The sync daemon: mirror a checkout to its workspace, first whole, then change by change."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from watchdog.observers.api import BaseObserver

from sync import state as state_file
from sync.base import Remote
from sync.config import DaemonConfig
from sync.errors import (
    AlreadySyncing,
    BlobHashMismatch,
    BlobsMissing,
    ServerUnreachable,
    StaleVersion,
)
from sync.manifests import Entry
from sync.scan import Local, Scan, Scanner
from sync.schemas import MAX_COMMIT
from sync.state import Pending, SyncState
from sync.watch import Changes, start_observer

log = logging.getLogger(__name__)

TRIES = 3  # a file that changes between hashing and upload is read again, this many times


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Report:
    """What one round sent."""

    version: int
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    uploaded: int = 0
    uploaded_bytes: int = 0


def diff(before: dict[str, Local], after: dict[str, Local]) -> tuple[list[Entry], list[str]]:
    """Entries new or changed in `after`, and paths gone from it (a parent before its children)."""
    changes = [
        local.entry
        for path, local in sorted(after.items())
        if path not in before or before[path].entry != local.entry
    ]
    return changes, sorted(path for path in before if path not in after)


class SyncDaemon:
    """One checkout mirrored to one workspace through a Remote."""

    def __init__(
        self,
        root: Path,
        remote: Remote,
        *,
        server: str,
        state_path: Path,
        config: DaemonConfig | None = None,
    ) -> None:
        self.root = root.resolve()
        self.remote = remote
        self.server = server
        self.path = state_path
        self.config = config or DaemonConfig()
        self.scanner = Scanner(self.root)
        loaded = state_file.load(state_path)
        if loaded is None or loaded.server != server or loaded.root != str(self.root):
            loaded = SyncState(root=str(self.root), server=server)
        self.state = loaded
        self.current: dict[str, Local] | None = None
        self._lock: int | None = None
        self.observer: BaseObserver | None = None
        """The watcher while `run` runs; a dead one is noticed and replaced."""

    # -- one round -------------------------------------------------------------------

    def register(self) -> str:
        if self.state.workspace_id is None:
            key = f"{socket.gethostname()}:{self.root}"
            self.state.workspace_id = self.remote.register(
                key=key, name=self.root.name or str(self.root), root=str(self.root)
            )
            self.save()
        return self.state.workspace_id

    def sync(self, dirty: set[str] | None = None) -> Report:
        """Send what changed: everything when `dirty` is None, else those paths and below."""
        workspace = self.register()
        for _ in range(TRIES):
            found = self._scan(dirty)
            try:
                return self._send(workspace, found)
            except (BlobHashMismatch, BlobsMissing) as exc:
                log.info("%s; reading the tree again", exc)
                dirty = None
            except ServerUnreachable as exc:
                self._pending(found, str(exc))
                raise
        found = self._scan(None)
        return self._send(workspace, found)

    def _scan(self, dirty: set[str] | None) -> Scan:
        known = self.current if self.current is not None else self.state.committed()
        if dirty is None or self.current is None:
            found = self.scanner.scan(known)
        else:
            found = self.scanner.rescan(self.current, dirty, self.state.refused)
        committed = self.state.committed()
        for path in found.unstable:  # keep what the server has until the file holds still
            if path in committed:
                found.entries[path] = committed[path]
        self.current = found.entries
        self.state.refused = found.refused
        return found

    def _send(self, workspace: str, found: Scan) -> Report:
        changes, deleted = diff(self.state.committed(), found.entries)
        report = Report(version=self.state.version)
        if changes or deleted:
            self._upload(changes, report)
            try:
                report.version = self._commit(workspace, changes, deleted)
            except StaleVersion:
                # Someone else moved the workspace on: the local tree wins, against their head.
                head, tree = self.remote.manifest(workspace)
                self.state.version = head
                self.state.remember({p: Local(e) for p, e in tree.items()})
                changes, deleted = diff(self.state.committed(), found.entries)
                self._upload(changes, report)
                report.version = self._commit(workspace, changes, deleted)
            report.changed = [e.path for e in changes]
            report.deleted = deleted
            self.state.last_change = utcnow()
        self.state.version = report.version
        self.state.remember(found.entries)
        self.state.last_sync = utcnow()
        self.state.pending = Pending(paths=sorted(found.unstable))
        self.save()
        return report

    def _upload(self, changes: list[Entry], report: Report) -> None:
        paths: dict[str, Entry] = {}
        for entry in changes:
            if entry.kind == "file" and entry.hash:
                paths.setdefault(entry.hash, entry)
        for digest in self.remote.missing(list(paths)):
            try:
                self.remote.upload(digest, self.root / paths[digest].path)
            except OSError as exc:  # it went away or changed type between scan and send
                raise BlobHashMismatch(f"{paths[digest].path}: {exc}") from exc
            report.uploaded += 1
            report.uploaded_bytes += paths[digest].size

    def _commit(self, workspace: str, changes: list[Entry], deleted: list[str]) -> int:
        """One commit; a change larger than the API takes goes as several, in order."""
        version = self.state.version
        while True:
            gone, deleted = deleted[:MAX_COMMIT], deleted[MAX_COMMIT:]
            room = MAX_COMMIT - len(gone)
            batch, changes = changes[:room], changes[room:]
            version = self.remote.commit(workspace, parent=version, changes=batch, deleted=gone)
            if not changes and not deleted:
                return version

    def _pending(self, found: Scan, error: str) -> None:
        changes, deleted = diff(self.state.committed(), found.entries)
        paths = sorted({e.path for e in changes} | set(deleted) | set(found.unstable))
        since = self.state.pending.since or utcnow()
        self.state.pending = Pending(paths=paths, error=error, since=since)
        self.save()

    def save(self) -> None:
        state_file.save(self.state, self.path)

    # -- the daemon ------------------------------------------------------------------

    def acquire(self) -> None:
        """Hold the checkout's lock: one daemon per checkout."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadySyncing(
                f"{self.root} is already being synced by another `autan sync` "
                f"(lock {self.path.with_suffix('.lock')})"
            ) from None
        self._lock = fd
        self.state.pid = os.getpid()

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def run(self, stop: threading.Event) -> None:
        """Sync, then watch and send each settled burst, until `stop` is set."""
        self.acquire()
        changes = Changes(self.root)
        observer = self.observer = start_observer(self.root, changes, self.config)
        dirty: set[str] | None = None
        wait = self.config.retry_s
        try:
            while not stop.is_set():
                try:
                    report = self.sync(dirty)
                except ServerUnreachable as exc:
                    log.warning("%s; retrying in %.1fs", exc, wait)
                    dirty = None  # a full (stamp-cached) scan on the next try
                    stop.wait(wait)
                    wait = min(wait * 2, self.config.retry_max_s)
                    continue
                wait = self.config.retry_s
                if report.changed or report.deleted:
                    log.info(
                        "version %d: %d changed, %d deleted, %d blob(s) uploaded",
                        report.version, len(report.changed), len(report.deleted), report.uploaded,
                    )  # fmt: skip
                if not changes.wait(stop, self.config, observer.is_alive):
                    break
                if not observer.is_alive():
                    log.error("the file watcher stopped; starting another, reading the tree again")
                    observer = self.observer = start_observer(self.root, changes, self.config)
                    dirty = None
                    continue
                dirty = changes.take()
        finally:
            observer.stop()
            observer.join(timeout=10)
            self.release()
