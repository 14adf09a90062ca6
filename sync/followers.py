"""The daemon's side of running tasks: each task started from the workspace is followed by a
thread that brings its edits home, from its start until it ends (and across restarts)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sync.errors import ServerUnreachable, SyncError
from sync.follow import Mode, TaskFollower, TaskLine, line_path, load_line
from sync.remote import HttpRemote

log = logging.getLogger(__name__)

APPLY_WAIT_S = 30.0
"""How long a stopping daemon waits for a change set being applied."""


def _where(line: TaskLine) -> str:
    return f"branch autan/{line.task_id}" if line.mode == "branch" else "the working tree"


class Followers:
    """Finds the workspace's tasks every `poll_s` and keeps one follower thread per live one."""

    def __init__(
        self,
        root: Path,
        remote: HttpRemote,
        workspace_id: str,
        state_dir: Path,
        *,
        mode: Mode = "branch",
        poll_s: float = 2.0,
    ) -> None:
        self.root = root
        self.remote = remote
        self.workspace_id = workspace_id
        self.state_dir = state_dir
        self.mode = mode
        self.poll_s = poll_s
        self.threads: dict[str, threading.Thread] = {}
        self.followers: dict[str, TaskFollower] = {}
        self.failed: dict[str, str] = {}
        self.done: set[str] = set()
        self._first_round = True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.round(stop)
            except ServerUnreachable as exc:
                log.info("tasks of workspace %s: %s", self.workspace_id, exc)
            stop.wait(self.poll_s)
        # A follower in its long-poll is left to end with the process (its threads are
        # daemons); one applying a change set is waited for, so its files and state are whole.
        for follower in self.followers.values():
            if follower.busy.acquire(timeout=APPLY_WAIT_S):
                follower.busy.release()

    def round(self, stop: threading.Event) -> None:
        """Follow every task not yet brought home. A task that had already ended when this
        daemon first looked is left to `autan pull`; one that ends between two looks (a task
        quicker than `poll_s`) is still followed: its change sets stay on the server."""
        first, self._first_round = self._first_round, False
        for task in self.remote.tasks(self.workspace_id):
            running = self.threads.get(task.id)
            if task.id in self.failed or task.id in self.done:
                continue
            if running is not None and running.is_alive():
                continue
            line = load_line(line_path(self.state_dir, task.id))
            if line is None:
                if task.finished and first:
                    self.done.add(task.id)  # ended before this daemon started: `autan pull`
                    continue
                line = TaskLine(
                    task_id=task.id, workspace_id=self.workspace_id, version=task.version,
                    mode=self.mode,
                )  # fmt: skip
            if line.done:
                self.done.add(task.id)  # its state file is not read again every round
                continue
            follower = self.followers[task.id] = TaskFollower(
                self.root, self.remote, line, self.state_dir
            )
            log.info("following task %s: its edits land on %s", task.id, _where(line))
            thread = threading.Thread(
                target=self._follow, args=(follower, stop), name=f"autan-task-{task.id[:8]}",
                daemon=True,
            )  # fmt: skip
            self.threads[task.id] = thread
            thread.start()

    def _follow(self, follower: TaskFollower, stop: threading.Event) -> None:
        task = follower.line.task_id
        try:
            follower.follow(stop)
            if follower.line.done:
                where = follower.line.branch or follower.root
                log.info("task %s ended: its work is on %s", task, where)
        except (SyncError, OSError) as exc:
            log.error("task %s: its work cannot be brought home: %s", task, exc)
            follower.line.error = str(exc)
            follower.save()
            self.failed[task] = str(exc)
