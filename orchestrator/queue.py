"""The Celery app on Redis, tuned for long agent jobs, and its attempt, report and intake queues."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery

from orchestrator.config import OrchestratorSettings

RUN_ATTEMPT = "autan.run_attempt"
REPORT_TASK = "autan.report_task"
INTAKE = "autan.intake"
JOBS_KEY = "autan:jobs"
"""Hash of attempt id -> enqueue time, for attempts whose job is in Redis and not yet taken.

It lives in the broker's Redis, so if Redis loses the queue it loses the markers too,
and the reconciler sees which queued attempts have no job any more."""

ENDING_KEY = "autan:ending:"
"""Prefix of the keys that mark a run whose end waits out a store outage (see `ending`)."""

FIRST, BEHIND = 0, 3
"""Priorities of attempt jobs. On Redis, kombu keeps one list per priority step and a worker
pops from the lowest number first; 0 is the queue's own list, 3 the one beside it."""
PRIORITY_SEP = "\x06\x16"
"""Kombu's separator between a queue's name and its priority step in a list's key."""


def priority_lists(queue_name: str) -> list[str]:
    """The Redis lists that hold a queue's jobs, first popped first."""
    return [queue_name, f"{queue_name}{PRIORITY_SEP}{BEHIND}"]


def broker_url(redis_url: str) -> str:
    """Kombu spells a Unix socket `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


def report_queue(queue_name: str) -> str:
    """Reports have their own queue so they never wait behind hour-long attempts."""
    return f"{queue_name}.reports"


def intake_queue(queue_name: str) -> str:
    """Webhook deliveries to finish have their own queue: a sender waits on none of them,
    and none waits behind an attempt."""
    return f"{queue_name}.intake"


def make_celery(settings: OrchestratorSettings) -> Celery:
    app = Celery("autan", broker=broker_url(settings.resolved_redis_url))
    limit = settings.job_time_limit_s
    app.conf.update(
        # An attempt's message is acknowledged when it ends, so a worker that dies
        # leaves it in the queue; one message at a time per process, no hoarding.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "priority_steps": [FIRST, BEHIND],
        },
        # Backstops behind the worker's own deadline (which ends an attempt cleanly) and
        # the retries of its end through a store outage.
        task_soft_time_limit=limit - settings.attempt_hard_grace_s / 2,
        task_time_limit=limit,
        task_default_queue=settings.queue_name,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # A Redis that refuses writes (MISCONF on a full disk, READONLY) answers with an
        # error, not a lost connection: retry it like one instead of stopping the worker.
        broker_channel_error_retry=True,
        broker_connection_max_retries=None,  # wait for the broker as long as it takes
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


class AttemptQueue:
    """Puts attempt, report and intake jobs on their queues and keeps the attempts' job markers."""

    def __init__(self, celery: Celery, client: redis.Redis, queue_name: str) -> None:
        self._celery = celery
        self._redis = client
        self._queue = queue_name
        self.report_queue = report_queue(queue_name)
        self.intake_queue = intake_queue(queue_name)

    def enqueue(self, attempt_id: str, *, first: bool = False) -> None:
        """Queue a job for the attempt: behind the others, or `first`, ahead of them (an
        attempt that lost its job or its worker must not wait out the whole backlog)."""
        # Marker first: a job in the queue always has one, so the reconciler never
        # takes a queued job for a lost one.
        self._redis.hset(JOBS_KEY, attempt_id, str(time.time()))
        self._celery.send_task(
            RUN_ATTEMPT,
            args=[attempt_id],
            queue=self._queue,
            priority=FIRST if first else BEHIND,
        )

    def enqueue_report(self, task_id: str) -> None:
        self._celery.send_task(REPORT_TASK, args=[task_id], queue=self.report_queue)

    def enqueue_intake(self, kind: str, payload: dict[str, Any]) -> None:
        """A webhook delivery for the `kind` intake processor to finish; `payload` is JSON
        and holds no secret (it rests in Redis)."""
        self._celery.send_task(INTAKE, args=[kind, payload], queue=self.intake_queue)

    def taken(self, attempt_id: str) -> None:
        self._redis.hdel(JOBS_KEY, attempt_id)

    def ending(self, attempt_id: str, *, for_s: float) -> None:
        """Mark the attempt's run as ending (its end retried through a store outage) for
        `for_s` at most: the reconciler leaves its silent lease alone meanwhile."""
        self._redis.set(f"{ENDING_KEY}{attempt_id}", "1", ex=max(1, int(for_s)))

    def ended(self, attempt_id: str) -> None:
        self._redis.delete(f"{ENDING_KEY}{attempt_id}")

    def still_ending(self, attempt_ids: Iterable[str]) -> set[str]:
        ids = list(attempt_ids)
        if not ids:
            return set()
        marks = self._redis.mget([f"{ENDING_KEY}{attempt_id}" for attempt_id in ids])
        return {attempt_id for attempt_id, mark in zip(ids, marks, strict=True) if mark}

    def without_job(self, attempt_ids: Iterable[str]) -> list[str]:
        ids = list(attempt_ids)
        if not ids:
            return []
        marks = self._redis.hmget(JOBS_KEY, ids)
        return [attempt_id for attempt_id, mark in zip(ids, marks, strict=True) if mark is None]

    def refusal(self) -> str | None:
        """Why Redis refuses writes now (a failed save on a full disk, a read-only replica,
        out of memory), or None when it takes them; connection errors are raised."""
        return write_refusal(self._redis)

    def depth(self) -> int:
        return sum(int(self._redis.llen(key)) for key in priority_lists(self._queue))


REFUSALS = ("MISCONF", "READONLY", "NOREPLICAS", "OOM")
"""Redis's error codes for a server that is up but takes no writes."""


def write_refusal(client: redis.Redis) -> str | None:
    """Try a small write; say why Redis refuses it, or None when it takes it."""
    try:
        client.set(PROBE_KEY, str(time.time()), ex=60)
    except redis.ResponseError as exc:
        if str(exc).startswith(REFUSALS) or isinstance(exc, redis.exceptions.ReadOnlyError):
            return str(exc).splitlines()[0]
        raise
    return None


PROBE_KEY = "autan:write-probe"
