"""`autan.toml` kept current: re-read when it changes, a broken edit refused while the last good
version stays in force, so an edit needs no restart."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from integrations.config import Routing
from integrations.errors import NotConfigured
from orchestrator.base import IntakeProcessor, Reporter
from orchestrator.lifecycle import Lifecycle
from orchestrator.reporting import Steps
from orchestrator.schemas import TaskView

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None
"""What says the file changed, cheaply: its inode, size and modification time (None: absent)."""


def stamp(path: Path) -> Stamp:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1)  # unreadable: Routing.load says why
    return (found.st_ino, found.st_size, found.st_mtime_ns)


class RoutingFile:
    """One `Routing` shared by every intake, replaced in place when the file changes and the
    new version is valid. `problem` says why the file on disk is not in force ("" when it is);
    `in_force` is whether a good version was ever loaded (if not, deliveries are refused)."""

    def __init__(
        self,
        path: Path,
        routing: Routing,
        problem: str = "",
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path, self.routing, self.problem = path, routing, problem
        self.in_force = not problem
        self.interval, self._clock = interval, clock
        self._seen = stamp(path)
        self._checked = clock()

    def refresh(self) -> bool:
        """Look at the file at most once per `interval`; re-read it only when its stamp changed.
        True when a new version was put in force."""
        now = self._clock()
        if now - self._checked < self.interval:
            return False
        self._checked = now
        seen = stamp(self.path)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            new = Routing.load(self.path)
        except NotConfigured as exc:
            kept = "the last good version stays in force" if self.in_force else "none is in force"
            self.problem = f"{exc}; {kept}"
            log.warning("autan.toml edit refused: %s", self.problem)
            return False
        self.routing.replace_with(new)
        self.problem, self.in_force = "", True
        log.info("autan.toml re-read: %s is in force", self.path)
        return True

    def warning(self) -> str:
        """Why the edited file is refused while the last good one serves; "" otherwise."""
        return self.problem if self.in_force else ""


_WATCHED: dict[Path, RoutingFile] = {}


def watched(path: Path) -> RoutingFile:
    """This process's one RoutingFile for `path`, which the worker's processors and reporters
    share; NotConfigured when the file is wrong now and none was good before (the entry point
    fails to load, and says why)."""
    if (found := _WATCHED.get(path)) is None:
        found = _WATCHED[path] = RoutingFile(path, Routing.load(path))
    return found


class FreshProcessor:
    """An `autan.intakes` processor that looks at autan.toml before each delivery."""

    def __init__(self, inner: IntakeProcessor, source: RoutingFile) -> None:
        self.inner, self.source = inner, source

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        self.source.refresh()
        self.inner.process(payload, lifecycle)


class FreshReporter:
    """An `autan.reporters` reporter that looks at autan.toml before each report."""

    def __init__(self, inner: Reporter, source: RoutingFile) -> None:
        self.inner, self.source = inner, source

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        self.source.refresh()
        self.inner.report(task, steps)
