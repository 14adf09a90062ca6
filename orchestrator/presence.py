"""Workers report themselves to the store, busy or idle, so the fleet lists every one."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from sqlalchemy import delete

from orchestrator.lifecycle import Lifecycle
from orchestrator.models import WorkerPresence
from orchestrator.outbox import STORE_DOWN, first_line

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=1)
"""A worker silent this long is taken off the list (a host gone for good)."""


def worker_name() -> str:
    """`host:pid`: the name a worker process reports and writes on the attempts it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def report(lifecycle: Lifecycle, *, name: str, concurrency: int) -> None:
    """Say this worker is alive now (on the database's clock), and forget long-silent ones."""
    host, _, pid = name.rpartition(":")
    with lifecycle.write() as (session, _):
        now = lifecycle.lease_clock(session)
        row = session.get(WorkerPresence, name)
        if row is None:
            row = WorkerPresence(name=name, host=host, pid=int(pid), started_at=now)
            session.add(row)
        row.concurrency, row.heartbeat_at = concurrency, now
        session.execute(
            delete(WorkerPresence).where(WorkerPresence.heartbeat_at < now - FORGET_AFTER)
        )


def leave(lifecycle: Lifecycle, *, name: str) -> None:
    """Take this worker off the list as it stops."""
    with lifecycle.write() as (session, _):
        session.execute(delete(WorkerPresence).where(WorkerPresence.name == name))


class Presence(threading.Thread):
    """Reports the worker every reconcile interval until stopped, then takes it off the list;
    a store that cannot be reached is said once, and tried again the next interval."""

    def __init__(self, lifecycle: Lifecycle, *, name: str, concurrency: int) -> None:
        super().__init__(name="autan-presence", daemon=True)
        self._lifecycle = lifecycle
        self._worker = name
        self._concurrency = concurrency
        self._stopping = threading.Event()

    def run(self) -> None:
        failing = False
        while True:
            try:
                report(self._lifecycle, name=self._worker, concurrency=self._concurrency)
                failing = False
            except STORE_DOWN as exc:
                if not failing:
                    log.warning("could not report this worker (%s); trying again", first_line(exc))
                failing = True
            if self._stopping.wait(self._lifecycle.settings.reconcile_interval_s):
                break
        try:
            leave(self._lifecycle, name=self._worker)
        except STORE_DOWN as exc:
            log.warning("could not take this worker off the list: %s", first_line(exc))

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)
