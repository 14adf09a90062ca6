"""Prometheus metrics read from the store and queue at scrape time, so every API replica agrees;
the workers alive, the pool and the disk from this process's readiness state."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from orchestrator.models import Attempt
from orchestrator.report_runs import REPORT_STATES, count_reports_by_state
from orchestrator.services import Services
from orchestrator.states import LIVE_ATTEMPT_STATES, AttemptState, TaskState
from orchestrator.store import count_tasks_by_state
from web.admission import Slots
from web.readiness import Readiness

log = logging.getLogger(__name__)

STREAM_KINDS = ("live", "task", "long-poll")
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class StoreCollector(Collector):
    def __init__(self, services: Services, readiness: Readiness, slots: Slots) -> None:
        self._services = services
        self._readiness = readiness
        self._slots = slots

    def _queued(self, session: Session) -> tuple[float, int]:
        """The oldest queued attempt's age, and how many attempts no one is moving: queued
        past the requeue grace with no job in Redis, or held with a heartbeat past the timeout."""
        settings, now = self._services.settings, self._services.lifecycle.lease_clock(session)
        queued = session.execute(
            select(Attempt.id, Attempt.enqueued_at).where(Attempt.state == AttemptState.QUEUED)
        ).all()
        oldest = min((at for _, at in queued if at is not None), default=None)
        grace = now - timedelta(seconds=settings.requeue_grace_s)
        waited = [attempt_id for attempt_id, at in queued if at is not None and at < grace]
        silent = session.scalar(
            select(func.count()).where(
                Attempt.state.in_(LIVE_ATTEMPT_STATES),
                Attempt.heartbeat_at < now - timedelta(seconds=settings.heartbeat_timeout_s),
            )
        )
        try:
            lost = len(self._services.queue.without_job(waited))
        except RedisError:
            lost = len(waited)  # no Redis, no jobs: nothing queued is moving
        age = (now - oldest).total_seconds() if oldest else 0.0
        return age, lost + int(silent or 0)

    def _process(self) -> Iterator[Metric]:
        yield _gauge(
            "autan_workers_alive",
            "Workers that answered the last ping of this API process",
            self._readiness.workers_alive,
        )
        yield _gauge(
            "autan_disk_free_bytes",
            "Free space in the data directory (-1: not measured yet)",
            self._readiness.disk_free_bytes,
        )
        pool = self._services.engine.pool
        in_use = pool.checkedout() if isinstance(pool, QueuePool) else 0
        yield _gauge(
            "autan_db_pool_in_use", "Database connections this API process holds now", in_use
        )
        streams = GaugeMetricFamily(
            "autan_streams_open",
            "Streams this API process holds open now: live (one per browser), task (one task's "
            "events, for the CLI and others), long-poll (a sync daemon waiting for edits)",
            labels=["kind"],
        )
        for kind in STREAM_KINDS:
            streams.add_metric([kind], self._slots.open[kind])
        yield streams
        yield _gauge(
            "autan_live_tasks_followed",
            "Tasks the live streams of this API process follow now, all streams together",
            self._slots.following,
        )

    def collect(self) -> Iterator[Metric]:
        yield from self._process()
        with self._services.sessions() as session:
            age, stranded = self._queued(session)
            by_state = count_tasks_by_state(session)
            by_report = count_reports_by_state(session)
            row = session.execute(
                select(
                    func.count(Attempt.duration_s),
                    func.coalesce(func.sum(Attempt.duration_s), 0.0),
                    *(
                        func.coalesce(func.sum(case((Attempt.duration_s <= b, 1), else_=0)), 0)
                        for b in DURATION_BUCKETS
                    ),
                )
            ).one()
        yield _gauge(
            "autan_oldest_queued_attempt_age_seconds",
            "How long the oldest queued attempt has waited for a worker (0: none queued)",
            age,
        )
        yield _gauge(
            "autan_stranded_attempts",
            "Attempts the reconciler should be moving: queued without a job, or silent",
            stranded,
        )
        tasks = GaugeMetricFamily("autan_tasks", "Tasks in the store by state", labels=["state"])
        for state in TaskState:
            tasks.add_metric([state.value], by_state.get(state.value, 0))
        yield tasks
        reports = GaugeMetricFamily(
            "autan_reports", "Reports back to a task's origin by state", labels=["state"]
        )
        for report_state in REPORT_STATES:
            reports.add_metric([report_state], by_report.get(report_state, 0))
        yield reports

        count, total, *cumulative = row
        buckets = [(str(b), int(c)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", int(count)))
        yield HistogramMetricFamily(
            "autan_attempt_duration_seconds",
            "Wall time of ended attempts, from claim to end",
            buckets=buckets,
            sum_value=float(total),
        )

        depth = GaugeMetricFamily(
            "autan_queue_depth",
            "Jobs waiting in the queue (-1: Redis unreachable)",
            labels=["queue"],
        )
        try:
            depth.add_metric([self._services.settings.queue_name], self._services.queue.depth())
        except RedisError as exc:
            log.warning("queue depth unavailable: %s", exc)
            depth.add_metric([self._services.settings.queue_name], -1)
        yield depth
