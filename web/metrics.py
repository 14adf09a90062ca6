"""Prometheus metrics read from the store and queue at scrape time, so every API replica agrees."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from orchestrator.models import Attempt
from orchestrator.services import Services
from orchestrator.states import TaskState
from orchestrator.store import count_tasks_by_state

log = logging.getLogger(__name__)

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class StoreCollector(Collector):
    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        with self._services.sessions() as session:
            by_state = count_tasks_by_state(session)
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
        tasks = GaugeMetricFamily("autan_tasks", "Tasks in the store by state", labels=["state"])
        for state in TaskState:
            tasks.add_metric([state.value], by_state.get(state.value, 0))
        yield tasks

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
