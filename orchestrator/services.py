"""The orchestrator's parts wired from settings: one place that every entry point builds from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis
from celery import Celery
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config import OrchestratorSettings
from orchestrator.db import PoolConfig, make_engine, make_sessionmaker, migrate, write_gate
from orchestrator.events import EventBus
from orchestrator.lifecycle import Lifecycle
from orchestrator.queue import AttemptQueue, make_celery
from orchestrator.registry import Intakes
from orchestrator.reporting import Reporters
from orchestrator.review import Reviewer
from sandbox.gitauth import Credentials
from sync.base import Storage
from sync.storage import open_storage


@dataclass
class Services:
    settings: OrchestratorSettings
    reporters: Reporters = field(default_factory=Reporters.from_entry_points)
    intakes: Intakes = field(default_factory=Intakes.from_entry_points)
    pool: PoolConfig = field(default_factory=PoolConfig)
    """The store's connection pool; the API sizes it from its thread count."""
    git_credentials: Credentials | None = None
    """What the worker's runner fetches each repository with (from the integrations, which
    `autan worker` wires in); None: public repositories only."""

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url, self.pool)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.resolved_redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )

    @cached_property
    def storage(self) -> Storage:
        """Blobs, manifests and trajectories: object storage shared by every host, or the disk."""
        return open_storage(self.settings.storage_config(), self.settings.data_dir / "blobs")

    @cached_property
    def celery(self) -> Celery:
        return make_celery(self.settings)

    @cached_property
    def queue(self) -> AttemptQueue:
        return AttemptQueue(self.celery, self.redis, self.settings.queue_name)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            sessions=self.sessions,
            settings=self.settings,
            queue=self.queue,
            bus=EventBus(self.redis),
            gate=write_gate(self.engine),
            reviewer=Reviewer.from_settings(self.settings),
        )

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()
