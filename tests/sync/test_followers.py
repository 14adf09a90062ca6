"""Which tasks the daemon brings home: one quicker than its poll is not missed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from sync.follow import line_path, load_line
from sync.followers import Followers
from sync.schemas import TaskChanges, WorkspaceTask

WORKSPACE = "w" * 32


class Listing:
    """A server whose task list the test sets between rounds; every task ended, unchanged."""

    def __init__(self) -> None:
        self.listed: list[WorkspaceTask] = []

    def tasks(self, workspace_id: str) -> list[WorkspaceTask]:
        assert workspace_id == WORKSPACE
        return list(self.listed)

    def task_changes(self, workspace_id: str, task_id: str, after: int, wait: float) -> TaskChanges:
        return TaskChanges(task_id=task_id, version=1, finished=True, changes=[], last=after)

    def conflicts(self, workspace_id: str) -> list[object]:
        return []


def ended(task_id: str) -> WorkspaceTask:
    return WorkspaceTask(
        id=task_id, state="unverified", title="t", version=1, finished=True,
        created_at=datetime.now(UTC),
    )  # fmt: skip


def test_a_task_that_ends_between_two_polls_is_still_brought_home(tmp_path: Path) -> None:
    server = Listing()
    followers = Followers(tmp_path / "checkout", server, WORKSPACE, tmp_path / "state",  # type: ignore[arg-type]
                          mode="inplace")  # fmt: skip
    (tmp_path / "checkout").mkdir()
    stop = threading.Event()
    server.listed = [ended("before")]
    followers.round(stop)  # the daemon's first look: that task ended before it started
    server.listed = [ended("before"), ended("quick")]  # started and ended since
    followers.round(stop)
    followers.threads["quick"].join(timeout=30)

    assert "before" in followers.done and "before" not in followers.threads
    assert load_line(line_path(tmp_path / "state", "before")) is None  # left to `autan pull`
    line = load_line(line_path(tmp_path / "state", "quick"))
    assert line is not None and line.done and "quick" not in followers.failed
