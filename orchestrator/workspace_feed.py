"""A running attempt's line to its workspace: news of local versions over Redis pub/sub, their
content from the store, and the conflicts met in the sandbox recorded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

from orchestrator import workspace_store
from orchestrator.models import utcnow
from orchestrator.services import Services
from sync.live import ChangeSet, SandboxConflict
from sync.manifests import Entry

log = logging.getLogger(__name__)


def channel(workspace_id: str) -> str:
    return f"autan:workspace:{workspace_id}"


def announce(client: redis.Redis, workspace_id: str, number: int) -> None:
    """Tell running attempts that the workspace has version `number` (best effort: they also
    read the head now and then, so a lost message only delays)."""
    try:
        client.publish(channel(workspace_id), str(number))
    except RedisError as exc:
        log.warning("could not announce version %d of workspace %s: %s", number, workspace_id, exc)


class WorkspaceFeed:
    """What `sync.live.LiveSync` needs of the orchestrator, over the store and Redis."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def head(self, workspace_id: str) -> int:
        with self.services.sessions() as session:
            return workspace_store.get(session, workspace_id=workspace_id).head

    def base(self, workspace_id: str, number: int) -> dict[str, Entry]:
        with self.services.sessions() as session:
            return workspace_store.entries_at(session, workspace_id=workspace_id, number=number)

    def changes(self, workspace_id: str, after: int, upto: int) -> ChangeSet:
        with self.services.sessions() as session:
            changes, deleted = workspace_store.changes_between(
                session, workspace_id=workspace_id, after=after, upto=upto
            )
        return ChangeSet(changes, deleted)

    def record(self, workspace_id: str, task_id: str, conflicts: list[SandboxConflict]) -> None:
        """Keep the sandbox's open conflicts of the task (for the dashboard and the API)."""
        with self.services.sessions() as session:
            workspace_store.set_conflicts(
                session, workspace_id=workspace_id, task_id=task_id, side="sandbox",
                conflicts=[(c.path, c.copy) for c in conflicts], now=utcnow(),
            )  # fmt: skip
            session.commit()

    def listen(self, workspace_id: str, on_version: Callable[[int], None]) -> Callable[[], None]:
        """Call `on_version` for each version announced, from a thread; returns its stop."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    pubsub = self.services.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(channel(workspace_id))
                    try:
                        while not stop.is_set():
                            message = pubsub.get_message(timeout=0.5)
                            data = message.get("data") if message else None
                            if isinstance(data, bytes) and data.isdigit():
                                on_version(int(data))
                    finally:
                        pubsub.close()
                except RedisError as exc:
                    log.warning("workspace %s news lost Redis (%s); polling", workspace_id, exc)
                    stop.wait(2.0)

        thread = threading.Thread(target=run, name="autan-workspace-news", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(timeout=5)

        return close
