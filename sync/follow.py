"""Bringing the agent's work home: a task's edits applied to a worktree branch `autan/<task>`
beside the checkout (the default), or into the checkout itself (`inplace`), three-way.

Each attempt's edits are kept as an overlay over the task's base version; one attempt is
applied as its edits arrive, and when the task ends the kept attempt's tree is applied if it
was another. The state (`<state dir>/tasks/<task>.json`) is written after every change set,
so a follower killed at any point resumes: applying a change set twice changes nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat as stat_mode
import subprocess
import threading
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from sync import state as state_file
from sync.errors import FileUnstable, ServerUnreachable, SyncError
from sync.hashing import hash_file
from sync.manifests import Entry
from sync.merge import Applier, merge
from sync.scan import Scanner
from sync.schemas import ConflictCopy, ConflictView, TaskChanges

log = logging.getLogger(__name__)

Mode = Literal["branch", "inplace"]
Overlay = dict[str, Entry | None]
"""Paths changed from the base: the entry now, or None where it was deleted."""

GIT_ID = ["-c", "user.name=Autan", "-c", "user.email=autan@localhost", "-c", "commit.gpgsign=false"]


class FollowError(SyncError):
    """Raised when a task's work cannot be brought home (no git checkout for a branch...)."""


class TaskLine(BaseModel):
    """One task followed into the checkout: what arrived and what was applied where."""

    task_id: str
    workspace_id: str
    version: int
    mode: Mode = "branch"
    seq: int = 0
    attempts: dict[int, Overlay] = Field(default_factory=dict)
    followed: int | None = None
    applied: Overlay = Field(default_factory=dict)
    worktree: str | None = None
    branch: str | None = None
    base_done: bool = False
    conflicts: list[ConflictCopy] = Field(default_factory=list)
    in_sandbox: list[ConflictCopy] = Field(default_factory=list)
    """Conflicts met in the task's sandbox, as the server lists them: the agent's version
    stays there, the developer's beside it (`copy_path`; None for a deletion not taken)."""
    done: bool = False
    error: str | None = None


class TaskRemote(Protocol):
    """What the follower needs of the server (`sync.remote.HttpRemote` implements it)."""

    def task_changes(
        self, workspace_id: str, task_id: str, after: int, wait: float
    ) -> TaskChanges: ...

    def manifest_at(self, workspace_id: str, version: int) -> dict[str, Entry]: ...

    def download(self, workspace_id: str, task_id: str, digest: str, dest: Path) -> None: ...

    def report_conflicts(
        self, workspace_id: str, task_id: str, conflicts: list[ConflictCopy]
    ) -> None: ...

    def conflicts(self, workspace_id: str) -> list[ConflictView]: ...


def lines_dir(state_path: Path) -> Path:
    """Where a checkout's task lines live, beside its state file."""
    return state_path.with_name(f"{state_path.stem}.tasks")


def line_path(state_dir: Path, task_id: str, mode: Mode | None = None) -> Path:
    """The task's line; with `mode`, a second line that lands its edits the other way (a
    branch-mode daemon followed it, and `autan pull --apply inplace` brings it in place)."""
    return state_dir / (f"{task_id}.json" if mode is None else f"{task_id}.{mode}.json")


def load_lines(state_dir: Path) -> list[TaskLine]:
    return [line for p in sorted(state_dir.glob("*.json")) if (line := load_line(p)) is not None]


def load_line(path: Path) -> TaskLine | None:
    try:
        return TaskLine.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SyncError(
            f"the task state {path} is unreadable ({exc}); remove it to start over"
        ) from exc


class TaskFollower:
    """Applies one task's edits to the checkout at `root`, as its line says."""

    def __init__(
        self,
        root: Path,
        remote: TaskRemote,
        line: TaskLine,
        state_dir: Path,
        path: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.remote = remote
        self.line = line
        self.path = path or line_path(state_dir, line.task_id)
        self.cache = state_dir / "downloads"
        self._base: dict[str, Entry] | None = None
        self._prefix: str | None = None
        self.busy = threading.Lock()
        """Held while a change set is applied: a daemon stopping waits for that, never for
        the long-poll in between (which would hold it up to `wait` seconds)."""

    @property
    def base(self) -> dict[str, Entry]:
        if self._base is None:
            self._base = self.remote.manifest_at(self.line.workspace_id, self.line.version)
        return self._base

    def save(self) -> None:
        state_file.write_atomic(self.path, self.line.model_dump_json().encode())

    # -- following ---------------------------------------------------------------------

    def follow(self, stop: threading.Event, wait: float = 25.0) -> None:
        """Apply edits as they come until the task ends (or `stop`); retries while away."""
        pause = 0.5
        while not stop.is_set() and not self.line.done:
            try:
                got = self.remote.task_changes(
                    self.line.workspace_id, self.line.task_id, self.line.seq, wait
                )
                with self.busy:
                    if stop.is_set():
                        return  # the set is asked for again next time: nothing is lost
                    self.take(got)
                pause = 0.5
            except ServerUnreachable as exc:
                log.warning("task %s: %s; retrying in %.1fs", self.line.task_id, exc, pause)
                stop.wait(pause)
                pause = min(pause * 2, 15.0)

    def catch_up(self) -> None:
        """Apply everything there is now, once (`autan pull`)."""
        while True:
            line = self.line
            got = self.remote.task_changes(line.workspace_id, line.task_id, line.seq, 0)
            self.take(got)
            if not got.changes or self.line.done:
                return

    def take(self, got: TaskChanges) -> None:
        for change in got.changes:
            delta: Overlay = {e.path: e for e in change.changes}
            delta.update(dict.fromkeys(change.deleted))
            self.line.attempts.setdefault(change.attempt, {}).update(delta)
            if self.line.followed is None:
                self.line.followed = change.attempt
            if change.attempt == self.line.followed:
                self.apply(delta, f"attempt {change.attempt}", change.bases)
            self.line.seq = change.seq
            self.save()
        self.line.seq = max(self.line.seq, got.last)
        if got.finished and not self.line.done:
            if got.chosen is not None and got.chosen != self.line.followed:
                self.apply(self._switch(got.chosen), f"attempt {got.chosen}, the one kept")
                self.line.followed = got.chosen
            if self.line.followed is None and self.line.mode == "branch":
                self._target()  # a task that changed nothing still gets its branch
            self.line.done = True
        self._resolve_gone()
        self._sandbox_conflicts()
        self.save()

    def _sandbox_conflicts(self) -> None:
        """The task's open conflicts in its sandbox, kept for `autan sync status` (each answer
        of the long-poll brings them up to date)."""
        try:
            found = self.remote.conflicts(self.line.workspace_id)
        except SyncError as exc:
            log.info("task %s: sandbox conflicts not read: %s", self.line.task_id, exc)
            return
        self.line.in_sandbox = [
            ConflictCopy(path=c.path, copy_path=c.copy_path)
            for c in found
            if c.task_id == self.line.task_id and c.side == "sandbox"
        ]

    def _switch(self, chosen: int) -> Overlay:
        """What takes the applied tree to the chosen attempt's."""
        want = self.line.attempts.get(chosen, {})
        delta: Overlay = {}
        for path in set(want) | set(self.line.applied):
            target = want[path] if path in want else self.base.get(path)
            have = self.line.applied[path] if path in self.line.applied else self.base.get(path)
            if target != have:
                delta[path] = target
        return delta

    # -- applying ----------------------------------------------------------------------

    def apply(self, delta: Overlay, what: str, agreed: Overlay | None = None) -> None:
        """Three-way, theirs the delta. On a branch the base is what was applied before (the
        task's base version at first); in place it is what the sandbox and this checkout last
        agreed on (`agreed`), so an edit the agent made on top of a local one is no conflict."""
        target = self._target()
        base, ours, theirs = {}, {}, {}
        for path, entry in delta.items():
            if self.line.mode == "inplace" and agreed is not None and path in agreed:
                before = agreed[path]
            elif path in self.line.applied:
                before = self.line.applied[path]
            else:
                before = self.base.get(path)
            if before is not None:
                base[path] = before
            now = entry_at(target, path)
            if now is not None:
                ours[path] = now
            if entry is not None:
                theirs[path] = entry
        applier = Applier(target, self._download, self.line.task_id)
        try:
            conflicts = applier.apply(merge(base, ours, theirs), ours)
        finally:
            shutil.rmtree(self.cache, ignore_errors=True)
        self.line.applied.update(delta)
        copies: dict[str, str | None] = {c.path: None for c in conflicts}
        copies.update(applier.copies)
        # A newer conflict at a path replaces the older (its copy is the newer version).
        kept = [c for c in self.line.conflicts if c.path not in copies]
        self.line.conflicts = kept + [ConflictCopy(path=p, copy_path=c) for p, c in copies.items()]
        if copies:
            log.warning(
                "task %s: conflicts (both versions kept): %s",
                self.line.task_id,
                ", ".join(f"{p} (theirs: {c})" if c else p for p, c in sorted(copies.items())),
            )
            self._report()
        if self.line.mode == "branch":
            paths = sorted(set(delta) | set(applier.copies.values()))
            self._commit(f"autan: {self.line.task_id}: {len(delta)} path(s) from {what}", paths)

    def _download(self, digest: str) -> Path:
        dest = self.cache / digest
        if not dest.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            self.remote.download(self.line.workspace_id, self.line.task_id, digest, dest)
        return dest

    def _resolve_gone(self) -> None:
        """A conflict the developer has dealt with is resolved."""
        target = self._target_path()
        if target is None:
            return
        # One with a copy ends when the copy is deleted; one without (the agent deleted what
        # the developer changed) when the developer deletes it too.
        kept = [c for c in self.line.conflicts if os.path.lexists(target / (c.copy_path or c.path))]
        if len(kept) != len(self.line.conflicts):
            self.line.conflicts = kept
            self._report()

    def _report(self) -> None:
        try:
            self.remote.report_conflicts(
                self.line.workspace_id, self.line.task_id, self.line.conflicts
            )
        except SyncError as exc:
            log.warning("task %s: conflicts not reported to the server: %s", self.line.task_id, exc)

    # -- where the work lands ----------------------------------------------------------

    def _target_path(self) -> Path | None:
        if self.line.mode == "inplace":
            return self.root
        if self.line.worktree is None:
            return None
        return Path(self.line.worktree) / self.prefix

    def _target(self) -> Path:
        if self.line.mode == "inplace":
            return self.root
        if not self.line.base_done:
            self._make_worktree()
        path = self._target_path()
        assert path is not None
        return path

    def _make_worktree(self) -> None:
        top = Path(_git(self.root, "rev-parse", "--show-toplevel").strip())
        branch = f"autan/{self.line.task_id}"
        worktree = top.parent / f"{top.name}.autan" / self.line.task_id
        self.line.worktree, self.line.branch = str(worktree), branch
        self.save()
        if not worktree.exists():
            worktree.parent.mkdir(parents=True, exist_ok=True)
            _git(top, "worktree", "add", "-b", branch, str(worktree), "HEAD")
        target = worktree / self.prefix
        target.mkdir(parents=True, exist_ok=True)
        self._fill_base(target)
        self._commit(
            f"autan: {self.line.task_id} starts from workspace version {self.line.version} "
            "(the checkout as it was, uncommitted work included)"
        )
        self.line.base_done = True
        self.save()

    def _fill_base(self, target: Path) -> None:
        """Make `target` hold the base version: the checkout's uncommitted work goes in."""
        found = Scanner(target).scan({}).entries
        now = {p: local.entry for p, local in found.items()}
        plan = merge(now, now, self.base)
        try:
            Applier(target, self._download, self.line.task_id).apply(plan, now)
        finally:
            shutil.rmtree(self.cache, ignore_errors=True)

    def _commit(self, message: str, paths: list[str] | None = None) -> None:
        """Stage `paths` (all of the checkout's folder when None) and commit them, with git's
        plumbing: `git commit` would stat every file of the worktree first."""
        worktree = Path(self.line.worktree or "")
        prefix = self.prefix
        if paths is None:
            _git(worktree, "add", "-A", "--", prefix or ".")
        else:
            named = "\0".join(f"{prefix}/{p}" if prefix else p for p in paths)
            _git(worktree, "--literal-pathspecs", "add", "-A", "--pathspec-from-file=-",
                 "--pathspec-file-nul", stdin=named)  # fmt: skip
        tree = _git(worktree, "write-tree").strip()
        if tree == _git(worktree, "rev-parse", "HEAD^{tree}").strip():
            return  # nothing changed
        made = _git(worktree, *GIT_ID, "commit-tree", tree, "-p", "HEAD", "-m", message).strip()
        _git(worktree, "update-ref", "-m", "autan: the agent's edits", "HEAD", made)

    @property
    def prefix(self) -> str:
        """Where the checkout sits inside its git repository ("" at the top), found once."""
        if self._prefix is None:
            self._prefix = _prefix(self.root)
        return self._prefix


def _prefix(root: Path) -> str:
    """Where the checkout sits inside its git repository ("" at the top)."""
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    rel = os.path.relpath(root, top)
    return "" if rel == "." else rel


def _git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False,
            input=stdin,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise FollowError("git is not installed: install it, or use --apply inplace") from exc
    if done.returncode != 0:
        raise FollowError(
            f"git {' '.join(args[:2])} in {cwd} failed: {done.stderr.strip()[:300]} "
            "(a branch needs a git checkout with a commit; or use --apply inplace)"
        )
    return done.stdout


def entry_at(root: Path, path: str) -> Entry | None:
    """What the local tree holds at `path` now (None: nothing, or nothing synced)."""
    full = root / path
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat_mode.S_ISDIR(st.st_mode):
        return Entry(path=path, kind="dir")
    if stat_mode.S_ISLNK(st.st_mode):
        return Entry(path=path, kind="symlink", target=os.readlink(full), mode=0o777)
    if not stat_mode.S_ISREG(st.st_mode):
        return None
    try:
        digest, after = hash_file(full)
    except (OSError, FileUnstable):
        return None
    mode = 0o755 if after.st_mode & stat_mode.S_IXUSR else 0o644
    return Entry(path=path, kind="file", hash=digest, mode=mode, size=after.st_size)
