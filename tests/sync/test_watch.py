"""Watching: bursts coalesced into one set of paths, and polling when inotify is at its limit."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from sync.config import DaemonConfig
from sync.errors import SyncError
from sync.watch import Changes, start_observer
from tests.waiting import wait_until


class AtTheLimit(Observer):
    """A real inotify observer on a machine whose watches are used up: it cannot start."""

    def start(self) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_a_burst_of_events_comes_out_as_one_set_of_paths(checkout: Path) -> None:
    changes, stop = Changes(checkout), threading.Event()
    observer = start_observer(checkout, changes, DaemonConfig(settle_s=0.05))
    try:
        (checkout / ".git").mkdir()
        (checkout / ".git" / "index").write_text("ignored")
        for n in range(10):
            (checkout / "saved.txt").write_text(str(n))
        (checkout / "saved.txt").rename(checkout / "final.txt")

        assert changes.wait(stop, DaemonConfig(settle_s=0.05))
        seen = changes.take()

        def renamed() -> bool:
            seen.update(changes.take())
            return "final.txt" in seen

        wait_until(renamed, what="the rename")
        assert seen == {"saved.txt", "final.txt"}  # once each, and nothing of .git
    finally:
        observer.stop()
        observer.join(timeout=10)
    stop.set()
    assert not changes.wait(stop, DaemonConfig())


def test_at_the_inotify_limit_it_polls_and_says_how_to_raise_it(
    checkout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changes = Changes(checkout)
    config = DaemonConfig(poll_interval_s=0.05)
    observer = start_observer(checkout, changes, config, inotify=AtTheLimit)
    try:
        assert isinstance(observer, PollingObserver)
        assert "fs.inotify.max_user_watches" in caplog.text and "polling" in caplog.text
        (checkout / "new.txt").write_text("seen by polling")
        wait_until(lambda: "new.txt" in changes.take(), what="the polling observer")
    finally:
        observer.stop()
        observer.join(timeout=10)

    strict = DaemonConfig(observer="inotify")
    with pytest.raises(SyncError, match="max_user_watches"):
        start_observer(checkout, changes, strict, inotify=AtTheLimit)
