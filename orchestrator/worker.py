"""The Celery worker: the attempt, report and intake jobs, and the process that runs them."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from orchestrator.executor import AttemptExecutor
from orchestrator.queue import INTAKE, REPORT_TASK, RUN_ATTEMPT, intake_queue, report_queue
from orchestrator.reconcile import Reconciler
from orchestrator.runners import make_runner
from orchestrator.services import Services
from sandbox import reap_orphans

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def register_jobs(services: Services) -> Celery:
    """Attach the jobs to the services' Celery app; the runner is built once per process.

    Not shared (Celery's default): the jobs close over these services, so another app
    in the same process (tests build one per case) must not inherit them."""
    app = services.celery
    runner = make_runner(services.settings.runner)

    @app.task(name=RUN_ATTEMPT, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)
    def run_attempt(self: Task, attempt_id: str) -> str:
        return AttemptExecutor(services.lifecycle, runner, worker_name()).execute(attempt_id)

    @app.task(
        name=REPORT_TASK,
        bind=True,
        shared=False,
        acks_late=True,
        autoretry_for=(Exception,),
        retry_backoff=5,
        retry_backoff_max=600,
        max_retries=20,
    )
    def report_task(self: Task, task_id: str) -> str:
        return services.lifecycle.report(task_id, services.reporters)

    @app.task(
        name=INTAKE,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(Exception,),
        retry_backoff=2,
        retry_backoff_max=600,
        max_retries=20,
    )
    def intake(self: Task, kind: str, payload: dict[str, Any]) -> str:
        # Any failure (the service, the store) is retried with back-off for about two
        # hours; the processor submits with the delivery's key, so a repeat is harmless.
        services.intakes.get(kind).process(payload, services.lifecycle)
        return kind

    return app


def run_worker(services: Services, *, concurrency: int, loglevel: str = "INFO") -> None:
    """Run a worker in this process until it is stopped (blocks)."""
    services.migrate()
    reaped = reap_orphans(services.settings.sandboxes_dir)
    if reaped:
        log.warning("removed %d sandbox(es) left by a crashed worker: %s", len(reaped), reaped)
    app = register_jobs(services)
    reconciler = Reconciler(services.lifecycle)

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_: Any) -> None:
        # A forked child must not share the parent's database connections.
        services.engine.dispose(close=False)

    @worker_ready.connect(weak=False)
    def _start_reconciler(**_: Any) -> None:
        reconciler.start()

    @worker_shutdown.connect(weak=False)
    def _stop_reconciler(**_: Any) -> None:
        reconciler.stop()

    queue = services.settings.queue_name
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queue},{report_queue(queue)},{intake_queue(queue)}",
            f"--loglevel={loglevel}",
            f"--hostname=autan-{worker_name().replace(':', '-')}@%h",
            "--without-gossip",
            "--without-mingle",
            "--pool=prefork",
        ]
    )
