"""Delivery ids already seen, in Redis, so a redelivered webhook is answered once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from integrations.errors import QueueUnavailable

log = logging.getLogger(__name__)

KEEP_S = 7 * 24 * 3600
"""Services redeliver for hours at most; a week is ample."""


class Deliveries:
    """Remembers delivery ids for `KEEP_S`; the first to claim one wins."""

    def __init__(self, client: redis.Redis, prefix: str = "autan:delivery:") -> None:
        self.client = client
        self.prefix = prefix

    def first(self, key: str) -> bool:
        """True the first time `key` is seen, False after."""
        try:
            return bool(self.client.set(self.prefix + key, b"1", nx=True, ex=KEEP_S))
        except (redis.RedisError, OSError) as exc:
            raise QueueUnavailable(
                f"Redis, which remembers webhook deliveries, failed: {exc}"
            ) from exc

    def forget(self, key: str) -> None:
        """Let a redelivery through again (the first one could not be handled)."""
        try:
            self.client.delete(self.prefix + key)
        except (redis.RedisError, OSError) as exc:
            raise QueueUnavailable(
                f"Redis, which remembers webhook deliveries, failed: {exc}"
            ) from exc

    def accept(self, key: str, enqueue: Callable[[], None]) -> bool:
        """Claim `key`, then `enqueue` its job; False for a duplicate (nothing enqueued).

        If enqueueing fails the claim is released, so the sender's retry of the
        delivery (it gets a 503) is not taken for a duplicate."""
        if not self.first(key):
            return False
        with self.held(key):
            enqueue()
        return True

    @contextmanager
    def held(self, key: str) -> Iterator[None]:
        """Release the claimed `key` if the block fails (to queue its job, to store its task):
        the delivery was not handled, so the sender's retry must not be called a duplicate."""
        try:
            yield
        except Exception:
            try:
                self.forget(key)
            except QueueUnavailable:
                log.error("delivery %s stays marked as seen, unqueued: Redis failed twice", key)
            raise
