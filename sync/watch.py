"""Seeing changes: watchdog (inotify) with a polling fallback, bursts coalesced into path sets."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from sandbox.gitnames import has_git_name
from sync.config import DaemonConfig
from sync.errors import SyncError

log = logging.getLogger(__name__)

LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)
IGNORED_EVENTS = ("opened", "closed_no_write")


class Changes(FileSystemEventHandler):
    """Collects the relative paths that changed; `wait` returns once a burst has settled."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._paths: set[str] = set()
        self._lock = threading.Lock()
        self.arrived = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a file inside changed: that file has its own event
        found = []
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw)
            if not path:
                continue
            rel = os.path.relpath(path, self.root)
            if rel == "." or rel.startswith("../") or rel == "..":
                continue
            if has_git_name(rel):
                continue
            found.append(rel)
        if found:
            with self._lock:
                self._paths.update(found)
            self.arrived.set()

    def take(self) -> set[str]:
        with self._lock:
            paths, self._paths = self._paths, set()
        return paths

    def wait(
        self,
        stop: threading.Event,
        config: DaemonConfig,
        alive: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Block until changes arrived and went quiet for `settle_s` (at most `max_settle_s`),
        or until `alive()` is false (the watcher died: the caller starts another)."""
        while not self.arrived.wait(0.2):
            if stop.is_set():
                return False
            if not alive():
                return True
        deadline = time.monotonic() + config.max_settle_s
        while time.monotonic() < deadline:
            self.arrived.clear()
            if stop.wait(config.settle_s):
                return False
            if not self.arrived.is_set():
                break
        self.arrived.clear()
        return True


def start_observer(
    root: Path,
    handler: Changes,
    config: DaemonConfig,
    inotify: Callable[[], BaseObserver] = Observer,
) -> BaseObserver:
    """A started observer of `root`; at the inotify limit, a polling one (with a warning)."""
    if config.observer != "polling":
        observer = inotify()
        try:
            observer.schedule(handler, str(root), recursive=True)
            observer.start()
            return observer
        except OSError as exc:
            if exc.errno not in LIMIT_ERRNOS:
                raise
            if config.observer == "inotify":
                raise SyncError(f"{limit_message(exc)}; or set the observer to auto") from exc
            log.warning("%s; polling every %ss instead", limit_message(exc), config.poll_interval_s)
    observer = PollingObserver(timeout=config.poll_interval_s)
    observer.schedule(handler, str(root), recursive=True)
    observer.start()
    return observer


def limit_message(exc: OSError) -> str:
    return (
        f"inotify cannot watch this tree ({exc.strerror}): the per-user limit of watches or "
        "instances is reached; raise it with `sysctl fs.inotify.max_user_watches=524288` "
        "(and fs.inotify.max_user_instances), or leave big folders out in .autanignore"
    )
