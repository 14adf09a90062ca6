"""The sync daemon: mirror a checkout to its workspace, first whole, then change by change."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from watchdog.observers.api import BaseObserver

from sync import state as state_file
from sync.base import Remote
from sync.batches import MAX_RECORD
from sync.chunks import CHUNKED_ABOVE
from sync.config import DaemonConfig
from sync.errors import (
    AccessDenied,
    AlreadySyncing,
    BlobHashMismatch,
    BlobsMissing,
    ServerRefused,
    ServerUnreachable,
    StaleVersion,
    WorkspaceNotFound,
)
from sync.hashing import hash_bytes
from sync.manifests import Entry
from sync.renames import find_renames, roots
from sync.scan import Local, Scan, Scanner
from sync.schemas import MAX_COMMIT, WorkspaceDetail
from sync.state import Pending, SyncState
from sync.watch import Changes, start_observer

log = logging.getLogger(__name__)

ONE_SHOT_WAIT_S = 30.0
"""How long a starting daemon waits for a one-shot sync of the same checkout to finish."""

TRIES = 3  # a file that changes between hashing and upload is read again, this many times
BATCH_BLOBS, BATCH_BYTES = 2000, 8 << 20
"""Small blobs go up in requests of at most this many, or this many bytes."""
INLINE_FILES, INLINE_BYTES = 16, 64 << 10
"""A change with at most this many new files and bytes sends them inside its commit."""


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


def diff(
    before: dict[str, Local], after: dict[str, Local], paths: set[str] | None = None
) -> tuple[list[Entry], list[str]]:
    """Entries new or changed in `after`, and paths gone from it (a parent before its children);
    only among `paths` when given (a partial rescan says which it read)."""
    if paths is None:
        changes = [
            local.entry
            for path, local in sorted(after.items())
            if path not in before or before[path].entry != local.entry
        ]
        return changes, sorted(path for path in before if path not in after)
    changes = [
        after[path].entry
        for path in sorted(paths)
        if path in after and (path not in before or before[path].entry != after[path].entry)
    ]
    return changes, sorted(path for path in paths if path in before and path not in after)


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
        if loaded is None or loaded.root != str(self.root):
            loaded = SyncState(root=str(self.root), server=server)
        self.state = loaded
        self.committed = loaded.committed()
        """The tree the server holds, in memory; the state file gets it when saved."""
        self._unsaved_since: float | None = None
        self._sent_at = 0.0
        self.current: dict[str, Local] | None = None
        self._compared = False
        """Whether the server's head has been compared with the state since this started."""
        self._lock: int | None = None
        self.observer: BaseObserver | None = None
        """The watcher while `run` runs; a dead one is noticed and replaced."""

    # -- one round -------------------------------------------------------------------

    def register(self) -> str:
        key = f"{socket.gethostname()}:{self.root}"
        if self.state.workspace_id is not None and self.state.server != self.server:
            self._same_server(self.state.workspace_id, key)
        if self.state.workspace_id is None:
            self.state.workspace_id = self.remote.register(
                key=key, name=self.root.name or str(self.root), root=str(self.root)
            )
            self.save()
        return self.state.workspace_id

    def register_when_reachable(self, stop: threading.Event) -> str | None:
        """Register, waiting out a server that is down or refuses for now, as every later
        round does: a daemon started while the API restarts must not quit. None if `stop`."""
        wait = self.config.retry_s
        while True:
            try:
                return self.register()
            except (ServerUnreachable, ServerRefused) as exc:
                log.warning("%s; registering again in %.1fs", exc, wait)
            if stop.wait(wait):
                return None
            wait = min(wait * 2, self.config.retry_max_s)

    def _same_server(self, workspace_id: str, key: str) -> None:
        """A server is known by the workspace it reported, not by the URL's spelling (a
        proxy, a hostname, a trailing slash): one that answers for this checkout's workspace
        is the same server, and nothing is registered or read again. Another one starts
        this checkout's state afresh."""
        try:
            found: WorkspaceDetail | None = self.remote.workspace(workspace_id)
        except WorkspaceNotFound:
            found = None
        if found is not None and found.key == key:
            log.info("%s holds workspace %s: the server this checkout was synced to as %s",
                     self.server, workspace_id, self.state.server)  # fmt: skip
            self.state.server = self.server
            return
        log.info("%s does not hold workspace %s (synced to %s): registering this checkout "
                 "there", self.server, workspace_id, self.state.server)  # fmt: skip
        self.state = SyncState(root=str(self.root), server=self.server)
        self.committed, self.current = {}, None

    def sync(self, dirty: set[str] | None = None) -> Report:
        """Send what changed: everything when `dirty` is None, else those paths and below."""
        workspace = self.register()
        try:
            return self._sync(workspace, dirty)
        except WorkspaceNotFound as exc:
            raise WorkspaceNotFound(
                f"{exc}: the workspace was removed from the server, or is another user's "
                f"(the token changed hands); remove {self.path} "
                "and start `autan sync` again to register this checkout anew"
            ) from exc

    def _sync(self, workspace: str, dirty: set[str] | None) -> Report:
        if not self._compared:
            self._compare_head(workspace)
            dirty = None
        failed: set[str] = set()
        held: set[str] = set()
        for _ in range(TRIES):
            found = self._scan(dirty, held)
            try:
                return self._send(workspace, found)
            except (BlobHashMismatch, BlobsMissing) as exc:
                log.info("%s; reading the tree again", exc)
                dirty = None
                paths = set(getattr(exc, "paths", []))
                held |= paths & failed  # changed while sent twice: it waits, the rest goes
                failed |= paths
            except (ServerUnreachable, ServerRefused, AccessDenied) as exc:
                self._pending(found, str(exc))
                raise

        found = self._scan(None, held | failed)
        return self._send(workspace, found)

    def _compare_head(self, workspace: str) -> None:
        """Start from what the server holds, not from the state file: a daemon killed after a
        commit and before its state was written (or a state from elsewhere) would otherwise
        take the file's older tree for the server's, and a change undone meanwhile would
        never be sent. Entries the server holds as this state has them keep their stamps, so
        only files that differ are read again."""
        head, tree = self.remote.manifest(workspace)
        had = self.committed
        if head != self.state.version:
            log.info("the workspace is at version %d, this checkout's state at %d: comparing "
                     "the tree with it", head, self.state.version)  # fmt: skip
        self.committed = {
            path: had[path] if path in had and had[path].entry == entry else Local(entry)
            for path, entry in tree.items()
        }
        self.state.version = head
        self.current = None
        self._compared = True

    def _scan(self, dirty: set[str] | None, held: set[str] | None = None) -> Scan:
        """The tree as it is now; `held` are files that kept changing (or went) while they
        were sent: they count as unstable, left for a later round."""
        known = self.current if self.current is not None else self.committed
        if dirty is None or self.current is None:
            found = self.scanner.scan(known)
        else:
            found = self.scanner.rescan(self.current, dirty, self.state.refused)
        committed = self.committed
        for path in sorted((held or set()) - set(found.unstable)):
            found.entries.pop(path, None)
            found.unstable.append(path)
        for path in found.unstable:  # keep what the server has until the file holds still
            if path in committed:
                found.entries[path] = committed[path]
        self.current = found.entries
        self.state.refused = found.refused
        return found

    def _send(self, workspace: str, found: Scan) -> Report:
        # A partial rescan names what it read: the change is found among those paths alone,
        # so a save costs in proportion to the change, not to the tree.
        paths = None if found.touched is None else found.touched | set(found.unstable)
        changes, deleted = diff(self.committed, found.entries, paths)
        report = Report(version=self.state.version)
        pending = bool(self.state.pending.paths or self.state.pending.error)
        if changes or deleted:
            # A folder moved whole goes as a rename: nothing of it is asked about or sent.
            gone = {p: self.committed[p].entry for p in deleted}
            sent, dropped, renamed = find_renames(gone, changes, self.committed)
            inline = self._inline(sent) if found.touched is not None else {}
            if inline:
                report.uploaded = len(inline)
                report.uploaded_bytes = sum(len(data) for data in inline.values())
            else:
                self._upload(sent, report)
            try:
                report.version = self._commit(workspace, sent, dropped, inline, renamed)
            except StaleVersion:
                # Someone else moved the workspace on: the local tree wins, against their head.
                head, tree = self.remote.manifest(workspace)
                self.state.version = head
                self.committed = {p: Local(e) for p, e in tree.items()}
                changes, deleted = diff(self.committed, found.entries)
                self._upload(changes, report)
                report.version = self._commit(workspace, changes, deleted)
            report.changed = [e.path for e in changes]
            report.deleted = deleted
            self.state.last_change = utcnow()
        self.state.version = report.version
        self.committed = found.entries
        self.state.last_sync = utcnow()
        self.state.pending = Pending(paths=sorted(found.unstable))
        if found.touched is None or pending or found.unstable:
            self.save()  # a whole scan, or what `autan sync status` shows changed: now
        elif changes or deleted:
            self._sent_at = time.monotonic()
            self._unsaved_since = self._unsaved_since or self._sent_at
        return report

    def _inline(self, changes: list[Entry]) -> dict[str, bytes]:
        """An editor's save (a few small files) rides in the commit itself: one round trip,
        where asking first and uploading would be three. Empty when the change is larger."""
        files = {e.hash: e for e in changes if e.kind == "file" and e.hash}
        if len(files) > INLINE_FILES or sum(e.size for e in files.values()) > INLINE_BYTES:
            return {}
        inline = {}
        for digest, entry in files.items():
            try:
                data = (self.root / entry.path).read_bytes()
            except OSError as exc:
                raise BlobHashMismatch(f"{entry.path}: {exc}", [entry.path]) from exc
            if hash_bytes(data) != digest:
                raise BlobHashMismatch(f"{entry.path} changed since it was hashed", [entry.path])
            inline[digest] = data
        return inline

    def _upload(self, changes: list[Entry], report: Report) -> None:
        paths: dict[str, Entry] = {}
        for entry in changes:
            if entry.kind == "file" and entry.hash:
                paths.setdefault(entry.hash, entry)
        lacking = self.remote.missing(list(paths))
        batch: list[tuple[str, Path]] = []
        size = 0
        for digest in lacking:
            entry = paths[digest]
            report.uploaded += 1
            if entry.size > CHUNKED_ABOVE:
                report.uploaded_bytes += self._send_big(digest, entry)
                continue
            report.uploaded_bytes += entry.size
            if entry.size > MAX_RECORD:
                self._send_blobs([(digest, self.root / entry.path)], alone=True)
            else:
                batch.append((digest, self.root / entry.path))
                size += entry.size
                if len(batch) >= BATCH_BLOBS or size >= BATCH_BYTES:
                    self._send_blobs(batch)
                    batch, size = [], 0
        if batch:
            self._send_blobs(batch)

    def _send_blobs(self, blobs: list[tuple[str, Path]], alone: bool = False) -> None:
        with _reading([str(path.relative_to(self.root)) for _, path in blobs]):
            if alone:
                self.remote.upload(*blobs[0])
            else:
                self.remote.upload_many(blobs)

    def _send_big(self, digest: str, entry: Entry) -> int:
        """A big file as the chunks the server lacks (whole to a server without chunk
        lists); the bytes of content sent."""
        path = self.root / entry.path
        with _reading([entry.path]):
            sent = self.remote.upload_chunked(digest, path)
            if sent is None:
                self.remote.upload(digest, path)
                return entry.size
            return sent

    def _commit(
        self,
        workspace: str,
        changes: list[Entry],
        deleted: list[str],
        inline: dict[str, bytes] | None = None,
        renamed: list[tuple[str, str]] | None = None,
    ) -> int:
        """One commit; a change larger than the API takes goes as several, in order. A deleted
        folder is named alone: the server deletes what it holds."""
        version = self.state.version
        deleted = roots(deleted)
        while True:
            gone, deleted = deleted[:MAX_COMMIT], deleted[MAX_COMMIT:]
            room = MAX_COMMIT - len(gone)
            batch, changes = changes[:room], changes[room:]
            version = self.remote.commit(
                workspace, parent=version, changes=batch, deleted=gone, inline=inline,
                renamed=renamed,
            )  # fmt: skip
            renamed = None
            if not changes and not deleted:
                return version

    def _pending(self, found: Scan, error: str) -> None:
        changes, deleted = diff(self.committed, found.entries)
        paths = sorted({e.path for e in changes} | set(deleted) | set(found.unstable))
        since = self.state.pending.since or utcnow()
        self.state.pending = Pending(paths=paths, error=error, since=since)
        self.save()

    def save(self) -> None:
        self.state.remember(self.committed)
        state_file.save(self.state, self.path)
        self._unsaved_since = None

    def flush(self, idle_s: float = 1.0, max_age_s: float = 10.0) -> None:
        """Write the state once changes have paused for `idle_s`, or have waited `max_age_s`
        (a large tree's state takes tens of milliseconds to write: not on every save). A
        daemon killed before that loses nothing: the next one starts by comparing the disk
        with the server's head (`_compare_head`), not with this file."""
        since, now = self._unsaved_since, time.monotonic()
        if since is None:
            return
        if now - self._sent_at >= idle_s or now - since >= max_age_s:
            self.save()

    # -- the daemon ------------------------------------------------------------------

    def acquire(self, wait_s: float = 0.0) -> None:
        """Hold the checkout's lock: one daemon per checkout. A one-shot sync (`autan run
        --workspace`, `autan sync --once`) holds it for moments: wait up to `wait_s` for it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
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
        self.acquire(wait_s=ONE_SHOT_WAIT_S)
        changes = Changes(self.root)
        observer = self.observer = start_observer(self.root, changes, self.config)
        dirty: set[str] | None = None
        wait = self.config.retry_s
        try:
            while not stop.is_set():
                try:
                    report = self.sync(dirty)
                except (BlobHashMismatch, BlobsMissing) as exc:
                    # Files that would not hold still while sent: they are read again.
                    log.info("%s; trying again in %.1fs", exc, self.config.retry_s)
                    dirty = None
                    stop.wait(self.config.retry_s)
                    continue
                except (ServerUnreachable, ServerRefused) as exc:
                    # Refused (a tree caught mid-change, say): the watcher must not die of it;
                    # the change waits, and the whole tree is read again before the next try.
                    log.warning("%s; retrying in %.1fs", exc, wait)
                    if isinstance(exc, ServerRefused):
                        self.current = None
                    dirty = None  # a full (stamp-cached) scan on the next try
                    stop.wait(wait)
                    wait = min(wait * 2, self.config.retry_max_s)
                    continue
                wait = self.config.retry_s
                self.flush()
                if report.changed or report.deleted:
                    log.info(
                        "version %d: %d changed, %d deleted, %d blob(s) uploaded",
                        report.version, len(report.changed), len(report.deleted), report.uploaded,
                    )  # fmt: skip
                if not changes.wait(stop, self.config, self._tick):
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
            self.flush(0, 0)
            self.release()

    def _tick(self) -> bool:
        """Called while waiting for changes: writes a state that is due; False when the
        watcher has died."""
        self.flush()
        return self.observer is not None and self.observer.is_alive()


@contextmanager
def _reading(paths: list[str]) -> Iterator[None]:
    """Sending files read from the tree: one that went, or changed, since it was hashed is
    a BlobHashMismatch naming `paths`, so the tree is read again."""
    try:
        yield
    except OSError as exc:  # it went away or changed type between scan and send
        raise BlobHashMismatch(f"{exc}: reading the tree again", paths) from exc
    except BlobHashMismatch as exc:  # it changed between scan and send
        raise BlobHashMismatch(str(exc), paths) from exc
