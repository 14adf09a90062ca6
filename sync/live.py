"""A running sandbox kept in step with its workspace: local versions in, the agent's edits out.

Two trees are kept. `agreed` is, for each path, the last version both sides held: a local
change goes into the sandbox by the three-way rule against it (the sandbox unchanged since
takes it; the same edit is no conflict; the agent's own edit coming back is no conflict; a
true conflict keeps the agent's version where it is, the developer's beside it as
`PATH.autan-local`, and is reported). `known` is what the checkout was last sent or took:
the agent's edits go out as change sets of every path where the sandbox now differs from
it, their content stored in the blob store first. An edit is agreed only once the
checkout's own version holds it, never when it is sent: until then a developer's save made
on the older content meets it as a conflict, not an overwrite. A path is never sent back
the way it came, so the two directions do not echo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat as stat_mode
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sandbox.base import Sandbox
from sandbox.config import MAX_FILE_BYTES
from sandbox.diff import Budget, lstat_beneath, read_entry
from sandbox.errors import SandboxError
from sandbox.paths import (
    open_file_beneath,
    read_beneath,
    readlink_beneath,
    remove_beneath,
    replace_beneath,
    write_parents,
)
from sync.base import LocalBlobs
from sync.errors import SyncError, UnsafePath
from sync.hashing import CHUNK, new_hasher, stamp
from sync.ignore import IgnoreRules
from sync.manifests import Entry, check_path, resolves_inside
from sync.merge import copy_path
from sync.split import SplitDiff, split_diff

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]
MAX_SET = 500
"""Most entries one outgoing change set holds (an event each): big sweeps go as several."""


@dataclass
class ChangeSet:
    """Paths that changed on one side: new or changed entries, and deletions."""

    changes: list[Entry] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    bases: dict[str, Entry | None] = field(default_factory=dict)
    """Out: what each path was when both sides last agreed (the three-way base in place)."""

    def __bool__(self) -> bool:
        return bool(self.changes or self.deleted)

    def batches(self, size: int = MAX_SET) -> Iterator[ChangeSet]:
        changes, deleted, refused = list(self.changes), list(self.deleted), list(self.refused)
        while changes or deleted:
            gone, deleted = deleted[:size], deleted[size:]
            room = size - len(gone)
            batch, changes = changes[:room], changes[room:]
            paths = [e.path for e in batch] + gone
            yield ChangeSet(batch, gone, refused, bases={p: self.bases.get(p) for p in paths})
            refused = []  # said once, in the first batch


@dataclass(frozen=True)
class SandboxConflict:
    """A local change that met a different edit of the agent's: the agent's stays in place,
    the local one (unless a deletion) is kept beside it at `copy`."""

    path: str
    local: Entry | None
    agent: Entry | None
    copy: str | None = None


LOCAL_COPY = "local"
"""The label of the developer's version kept beside a conflict in the sandbox."""


class _SandboxIgnore(IgnoreRules):
    """The workspace's ignore rules as the sandbox holds them, read beneath its root."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__(Path("/nonexistent"))
        self.fd = fd
        self.limit = limit

    def read_lines(self, directory: str, name: str) -> list[str]:
        path = f"{directory}/{name}" if directory else name
        try:
            return (
                read_beneath(self.fd, path, limit=self.limit).decode(errors="replace").splitlines()
            )
        except (OSError, SandboxError):
            return []


class SandboxLink:
    """One sandbox and its workspace's line: `push` takes a local change in, `pull` the
    agent's edits out. Not thread-safe: one thread calls both (see `LiveSync`)."""

    def __init__(
        self,
        sandbox: Sandbox,
        blobs: LocalBlobs,
        base: dict[str, Entry],
        version: int,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.sandbox = sandbox
        self.max_file_bytes = max_file_bytes
        self.too_large: set[str] = set()
        """Files of the agent's left where they are, over `max_file_bytes` (each logged once)."""
        self.blobs = blobs
        self.version = version
        self.base = {p: e for p, e in base.items() if e.kind != "dir"}
        self.known: dict[str, Entry] = dict(self.base)
        self.agreed: dict[str, Entry] = dict(self.base)
        """The last version of each path both sides held: the base a local change merges on."""
        self.sent: dict[str, list[Entry | None]] = {}
        """The agent's versions of a path sent since it was last agreed: when the checkout's
        version comes back as one of them, that is the agent's own edit, not a new local one."""
        self.apart: set[str] = set()
        """Paths where `known` is not the base: the overlay alone may not show them."""
        self.from_checkout: dict[str, Entry | None] = {}
        """What the link last wrote at each path from the checkout (None: deleted there): the
        developer's saves, kept apart from the agent's work in the attempt's diff."""
        self._seen: dict[str, tuple[Stamp, Entry]] = {}

    # -- local changes in --------------------------------------------------------------

    def push(self, version: int, incoming: ChangeSet) -> list[SandboxConflict]:
        """Take a local change (version `version`) into the sandbox by the three-way rule."""
        for path in [e.path for e in incoming.changes] + incoming.deleted:
            check_path(path)  # before anything is written: a forged path changes nothing
        conflicts: list[SandboxConflict] = []
        fd = self.sandbox.open_tree()
        try:
            for entry in incoming.changes:
                self._guarded(fd, entry.path, entry, conflicts)
            for path in sorted(incoming.deleted, reverse=True):
                self._guarded(fd, path, None, conflicts)
        finally:
            os.close(fd)
        self.version = version
        return conflicts

    def _guarded(
        self, fd: int, path: str, theirs: Entry | None, conflicts: list[SandboxConflict]
    ) -> None:
        """Take one path; one that cannot be written (the agent put a file where a folder goes,
        a symlink that leads nowhere) is left as the sandbox has it, and logged."""
        try:
            if theirs is not None and theirs.kind == "dir":
                with self.sandbox.as_owner():
                    write_parents(fd, path)
            elif theirs is None and path not in self.known and path not in self.agreed:
                with self.sandbox.as_owner():
                    remove_beneath(fd, path, folder=True)  # a folder: gone once empty
            else:
                self._take(fd, path, theirs, conflicts)
        except (OSError, SandboxError) as exc:
            log.warning("%s: the local change could not go into the sandbox: %s", path, exc)

    def _take(
        self, fd: int, path: str, theirs: Entry | None, conflicts: list[SandboxConflict]
    ) -> None:
        ours = self._entry(fd, path, store=False)
        if path in self.too_large:  # what the agent made there cannot be read: it stays
            log.warning("%s: the local change is not taken: the agent's file is too large", path)
            return
        if ours == theirs:
            self._agree(path, theirs)
            self._settle(path, theirs)
        elif theirs in self.sent.get(path, ()):
            self._settle(path, theirs)  # the checkout took the agent's edit: the sandbox's stays
        elif ours == self.agreed.get(path):
            self._write(fd, path, theirs)
            self.from_checkout[path] = theirs
            self._agree(path, theirs)
            self._settle(path, theirs)
        else:  # both changed it since they last agreed
            copy = None if theirs is None else self._keep_beside(fd, path, theirs)
            conflicts.append(SandboxConflict(path, theirs, ours, copy))

    def _settle(self, path: str, entry: Entry | None) -> None:
        """Both sides now hold `entry` at `path`: it is the base of the next merge there."""
        if entry is None:
            self.agreed.pop(path, None)
        else:
            self.agreed[path] = entry
        self.sent.pop(path, None)

    def _keep_beside(self, fd: int, path: str, theirs: Entry) -> str:
        """The developer's version written beside the agent's, as `PATH.autan-local` (or the
        next free `-N` when the agent has made that name its own). It is not sent back: the
        checkout holds it already."""
        first = copy_path(path, LOCAL_COPY)
        copy, n = first, 1
        while True:
            check_path(copy)
            entry = theirs.model_copy(update={"path": copy})
            here = self._entry(fd, copy, store=False)
            if here == entry:
                break  # kept there already
            if here is None or here == self.known.get(copy):
                self._write(fd, copy, entry)
                break
            n += 1
            copy = f"{first}-{n}"
        self._agree(copy, entry)
        return copy

    def _write(self, fd: int, path: str, entry: Entry | None) -> None:
        """Writes as the sandbox's user; the blob is opened first, with the worker's own ids."""
        with contextlib.ExitStack() as stack:
            if entry is not None and entry.kind != "symlink":
                assert entry.hash is not None
                blob = stack.enter_context(open(self.blobs.path(entry.hash), "rb"))
            stack.enter_context(self.sandbox.as_owner())
            if entry is None:
                remove_beneath(fd, path)
            elif entry.kind == "symlink":
                replace_beneath(fd, path, symlink=entry.target)
            else:
                replace_beneath(fd, path, chunks=_chunks(blob), mode=entry.mode)
        st = lstat_beneath(fd, path)
        if entry is not None and st is not None:
            self._seen[path] = (stamp(st), entry)

    def _agree(self, path: str, entry: Entry | None) -> None:
        if entry is None:
            self.known.pop(path, None)
        else:
            self.known[path] = entry
        if self.known.get(path) == self.base.get(path):
            self.apart.discard(path)
        else:
            self.apart.add(path)

    def split(self, budget: Budget) -> SplitDiff:
        """The sandbox's diff from the base, the checkout's saves apart from the agent's work."""
        fd = self.sandbox.open_tree()
        try:
            return split_diff(
                self.base, self.from_checkout, [c.path for c in self.sandbox.changed_paths()],
                lambda p: self._entry(fd, p, store=False), lambda p: read_entry(fd, p, budget),
                self.blobs, budget,
            )  # fmt: skip
        finally:
            os.close(fd)

    # -- the agent's edits out ---------------------------------------------------------

    def pull(self) -> ChangeSet:
        """The agent's edits since the last pull (their blobs stored), now counted as known."""
        out = ChangeSet()
        fd = self.sandbox.open_tree()
        try:
            rules = _SandboxIgnore(fd, self.max_file_bytes)
            large = set(self.too_large)
            paths = {c.path for c in self.sandbox.changed_paths()} | self.apart
            now: dict[str, Entry | None] = {}
            for path in sorted(paths):
                try:
                    check_path(path)
                except UnsafePath:
                    continue
                if rules.ignored_with_parents(path, False):
                    continue
                now[path] = self._entry(fd, path, store=True)
            links = {p: e.target or "" for p, e in self.known.items() if e.kind == "symlink"}
            links.update({p: e.target or "" for p, e in now.items() if e and e.kind == "symlink"})
            for path, entry in now.items():
                if entry == self.known.get(path):
                    continue
                if (
                    entry is not None
                    and entry.kind == "symlink"
                    and not resolves_inside(path, links)
                ):
                    out.refused.append(path)
                    continue
                if entry is None:
                    out.deleted.append(path)
                else:
                    out.changes.append(entry)
                out.bases[path] = self.known.get(path)
                sent = self.sent.setdefault(path, [])
                if entry not in sent:  # an agent that edits back and forth adds nothing new
                    sent.append(entry)
                self._agree(path, entry)
            out.refused += sorted(self.too_large - large)
        finally:
            os.close(fd)
        return out

    def _entry(self, fd: int, path: str, *, store: bool) -> Entry | None:
        """What the sandbox holds at `path` now: a file (hashed, stored when `store`), a symlink,
        or None (absent, or a kind that is not synced)."""
        st = lstat_beneath(fd, path)
        if st is None:
            self._seen.pop(path, None)
            return None
        if stat_mode.S_ISLNK(st.st_mode):
            target = readlink_beneath(fd, path)
            return Entry(path=path, kind="symlink", target=target, mode=0o777)
        if not stat_mode.S_ISREG(st.st_mode):
            return None
        seen = self._seen.get(path)
        if seen is not None and seen[0] == stamp(st) and (not store or self.blobs.has(_hash(seen))):
            return seen[1]
        entry = self._read(fd, path, store=store)
        if entry is not None:
            after = lstat_beneath(fd, path)
            if after is not None:
                self._seen[path] = (stamp(after), entry)
        return entry

    def _read(self, fd: int, path: str, *, store: bool) -> Entry | None:
        for _ in range(3):  # a file written while it is read is read again
            try:
                file, before = open_file_beneath(fd, path)
            except (OSError, SandboxError):  # gone, or no longer a regular file
                return None
            try:
                if before.st_size > self.max_file_bytes:
                    return self._too_large(path, before.st_size)
                chunks = _fd_chunks(file, before.st_size)  # growing, it is read again
                if store:
                    digest, size = self.blobs.put_chunks(chunks)
                else:
                    hasher, size = new_hasher(), 0
                    for chunk in chunks:
                        hasher.update(chunk)
                        size += len(chunk)
                    digest = hasher.hexdigest()
                after = os.fstat(file)
            finally:
                os.close(file)
            if stamp(before) == stamp(after) and size == after.st_size:
                self.too_large.discard(path)
                mode = 0o755 if after.st_mode & stat_mode.S_IXUSR else 0o644
                return Entry(path=path, kind="file", hash=digest, mode=mode, size=size)
        log.info("%s keeps changing while it is read: left for the next round", path)
        return self.known.get(path)

    def _too_large(self, path: str, size: int) -> Entry | None:
        """A file over the bound stays in the sandbox, and out of sync; what was known of the
        path stands (so it is not taken for a deletion)."""
        if path not in self.too_large:
            log.warning(
                "%s: %d bytes, over the %d-byte limit: file too large, not synced",
                path, size, self.max_file_bytes,
            )  # fmt: skip
            self.too_large.add(path)
        return self.known.get(path)


def _hash(seen: tuple[Stamp, Entry]) -> str:
    return seen[1].hash or ""


def _fd_chunks(fd: int, size: int) -> Iterator[bytes]:
    """At most `size` bytes of `fd`, a chunk at a time."""
    left = size
    while left > 0 and (chunk := os.read(fd, min(CHUNK, left))):
        left -= len(chunk)
        yield chunk


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(CHUNK):
        yield chunk


class LiveSync:
    """The link's thread: woken by news of a local version, by `poke` (the agent changed
    files) or every `interval_s`; pushes what is new, then pulls and `send`s the agent's edits."""

    def __init__(
        self,
        link: SandboxLink,
        *,
        workspace_id: str,
        head: Callable[[], int],
        changes: Callable[[int, int], ChangeSet],
        send: Callable[[ChangeSet], None],
        conflicts: Callable[[list[SandboxConflict]], None],
        interval_s: float = 0.25,
    ) -> None:
        self.link = link
        self.workspace_id = workspace_id
        self._head, self._changes = head, changes
        self._send, self._conflicts = send, conflicts
        self.interval_s = interval_s
        self.wake = threading.Event()
        self.latest = link.version
        """The newest version announced; the thread catches up to it."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="autan-live-sync", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def announce(self, version: int) -> None:
        """A new local version exists (from pub/sub, or a poll of the head)."""
        if version > self.latest:
            self.latest = version
            self.wake.set()

    def poke(self) -> None:
        self.wake.set()

    def round(self) -> None:
        """One push and one pull, now (also what the thread does when woken)."""
        with self._lock:
            if self.latest > self.link.version:
                upto = self.latest
                found = self.link.push(upto, self._changes(self.link.version, upto))
                if found:
                    self._conflicts(found)
            out = self.link.pull()
            for batch in out.batches():
                self._send(batch)

    def _run(self) -> None:
        polled = 0.0
        while not self._stop.is_set():
            self.wake.wait(self.interval_s)
            self.wake.clear()
            if self._stop.is_set():
                return
            try:
                polled += self.interval_s
                if polled >= 2.0:  # should a message be lost, the head is read now and then
                    polled = 0.0
                    self.announce(self._head())
                self.round()
            except (OSError, SandboxError, SyncError) as exc:
                self.errors += 1
                log.warning("live sync of workspace %s: %s", self.workspace_id, exc)

    def stop(self) -> None:
        """Stop the thread, then one last round so the agent's final edits go out."""
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=30)
        try:
            self.round()
        except (OSError, SandboxError, SyncError) as exc:
            log.warning("the last live sync of workspace %s failed: %s", self.workspace_id, exc)
