"""The Celery worker: the attempt, report and intake jobs, and the process that runs them."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from sqlalchemy import event
from sqlalchemy.engine import Engine

from orchestrator.errors import InvalidSubmission
from orchestrator.executor import AttemptExecutor
from orchestrator.presence import Presence, worker_name
from orchestrator.queue import (
    INTAKE,
    REPORT_TASK,
    RUN_ATTEMPT,
    AttemptQueue,
    intake_queue,
    report_queue,
)
from orchestrator.reconcile import Reconciler
from orchestrator.runners import make_runner
from orchestrator.services import Services
from sandbox import reap_orphans

log = logging.getLogger(__name__)


def register_jobs(services: Services, name: str | None = None) -> Celery:
    """Attach the jobs to the services' Celery app; the runner is built once per process.

    Not shared (Celery's default): the jobs close over these services, so another app
    in the same process (tests build one per case) must not inherit them."""
    app = services.celery
    runner = make_runner(services.settings.runner, credentials=services.git_credentials)
    # The main process's name, taken before the pool forks: the attempts its children
    # run carry the name the worker reports itself by.
    name = name or worker_name()

    @app.task(name=RUN_ATTEMPT, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)
    def run_attempt(self: Task, attempt_id: str) -> str:
        return AttemptExecutor(services.lifecycle, runner, name).execute(attempt_id)

    # No Celery retries: a report records its own next try (back-off, deadline) in the
    # store, and the reconciler queues it when it is due; one job at a time holds it.
    @app.task(name=REPORT_TASK, bind=True, shared=False, acks_late=True)
    def report_task(self: Task, task_id: str) -> str:
        return services.lifecycle.report(task_id, services.reporters)

    @app.task(
        name=INTAKE,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(Exception,),
        dont_autoretry_for=(InvalidSubmission,),
        retry_backoff=2,
        retry_backoff_max=600,
        max_retries=20,
    )
    def intake(self: Task, kind: str, payload: dict[str, Any]) -> str:
        # A failure that may pass (the service, the store) is retried with back-off for
        # about two hours; the processor submits with the delivery's key, so a repeat is
        # harmless. A delivery that can never be a task (InvalidSubmission) fails once.
        services.intakes.get(kind).process(payload, services.lifecycle)
        return kind

    return app


def run_worker(services: Services, *, concurrency: int, loglevel: str = "INFO") -> int:
    """Run a worker in this process until it is stopped (blocks); returns its exit status,
    not 0 after an unrecoverable error. A Redis that refuses writes (a full disk) is waited
    out, here at the start and by Celery's consumer later (see `make_celery`)."""
    wait_for_writes(services.queue)
    end_frozen_transactions(services.engine, services.settings.heartbeat_timeout_s / 2)
    services.migrate()
    reaped = reap_orphans(services.settings.sandboxes_dir)
    if reaped:
        log.warning("removed %d sandbox(es) left by a crashed worker: %s", len(reaped), reaped)
    name = worker_name()
    app = register_jobs(services, name)
    reconciler = Reconciler(services.lifecycle)
    presence = Presence(services.lifecycle, name=name, concurrency=concurrency)

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_: Any) -> None:
        # A forked child must not share the parent's database connections.
        services.engine.dispose(close=False)

    @worker_ready.connect(weak=False)
    def _start_reconciler(**_: Any) -> None:
        reconciler.start()
        presence.start()

    @worker_shutdown.connect(weak=False)
    def _stop_reconciler(**_: Any) -> None:
        reconciler.stop()
        presence.stop()

    queue = services.settings.queue_name
    # app.start, not app.worker_main: it returns the worker's exit status, which
    # worker_main drops (an unrecoverable error would otherwise exit with 0).
    status = app.start(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queue},{report_queue(queue)},{intake_queue(queue)}",
            f"--loglevel={loglevel}",
            f"--hostname=autan-{name.replace(':', '-')}@%h",
            "--without-gossip",
            "--without-mingle",
            "--pool=prefork",
        ]
    )
    status = int(status or 0)
    if status != 0:
        log.error("the worker stopped on an unrecoverable error (status %d); see above", status)
    return status


def end_frozen_transactions(engine: Engine, after_s: float) -> None:
    """Have PostgreSQL end a worker's session that sits in a transaction for `after_s`.

    A worker frozen mid-transaction (SIGSTOP, a stalled VM) would otherwise keep its row
    locks, and the reconciler could not hand the attempt to another worker when its lease
    runs out. The worker's own transactions never wait that long between statements."""
    if engine.dialect.name != "postgresql":
        return
    millis = max(1000, int(after_s * 1000))

    @event.listens_for(engine, "connect")
    def _bound(dbapi_connection: Any, _: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {millis}")
        dbapi_connection.commit()


def wait_for_writes(queue: AttemptQueue) -> None:
    """Block while Redis refuses writes, saying why once; a Redis that cannot be reached
    is left to Celery, which retries its connection by itself."""
    said = None
    while True:
        try:
            why = queue.refusal()
        except (redis.RedisError, OSError):
            return
        if why is None:
            return
        if why != said:
            log.warning(
                "Redis refuses writes (%s): waiting for it; free disk space or fix Redis", why
            )
            said = why
        time.sleep(WRITE_WAIT_S)


WRITE_WAIT_S = 2.0
"""Pause between checks of a Redis that refuses writes."""
