"""Handing parsed work to the orchestrator, and decoding webhook bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from kombu.exceptions import KombuError

from integrations.errors import InvalidPayload, MalformedRequest, QueueUnavailable
from orchestrator.errors import IdempotencyConflict
from orchestrator.lifecycle import Lifecycle
from orchestrator.schemas import TaskSpec, TaskView

log = logging.getLogger(__name__)


def decode_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or MalformedRequest (400) / InvalidPayload (422)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedRequest("body is JSON nested deeper than Python can read") from exc
    if not isinstance(payload, dict):
        raise InvalidPayload(f"body is JSON {type(payload).__name__}, not an object")
    return payload


class Submitter:
    """Submits task specs; a key already used for other work counts as a duplicate."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def later(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue the rest of a delivery (the `kind` intake processor's job) for a worker."""
        try:
            self.lifecycle.queue.enqueue_intake(kind, payload)
        except (KombuError, redis.RedisError, OSError) as exc:
            raise QueueUnavailable(
                f"Redis, which queues webhook deliveries for the workers, failed: {exc}"
            ) from exc

    def submit(self, spec: TaskSpec) -> TaskView | None:
        """The new task; None when its idempotency key was already used (a redelivery)."""
        try:
            task, created = self.lifecycle.submit(spec)
        except IdempotencyConflict as exc:
            log.info("dropped a redelivery whose content changed: %s", exc)
            return None
        if not created:
            return None
        log.info("task %s from %s %s", task.id, spec.origin.kind, spec.origin.external_id)
        return task
