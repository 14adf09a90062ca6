"""Handing parsed work to the orchestrator, and decoding webhook bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from kombu.exceptions import KombuError
from sqlalchemy.exc import IntegrityError

from integrations.config import Routing, UserConfig
from integrations.errors import InvalidPayload, MalformedRequest, QueueUnavailable
from orchestrator.access import ROLE_SCOPES, Caller
from orchestrator.errors import IdempotencyConflict
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import User, utcnow
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.users import ensure_user, find_user

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


IDENTITY = {"slack": "user", "github": "sender", "jira": "account"}
"""Which field of an origin's data names the person who asked."""


class Submitter:
    """Submits task specs, each owned by its user; a key already used for other work counts
    as a duplicate."""

    def __init__(self, lifecycle: Lifecycle, routing: Routing) -> None:
        self.lifecycle = lifecycle
        self.routing = routing

    def owner(self, spec: TaskSpec) -> str:
        """The id of the user `autan.toml` maps the asker to, else of the connector's service
        user; either is made on first use."""
        kind = spec.origin.kind
        asker = spec.origin.data.get(IDENTITY.get(kind, ""))
        return self.person(kind, asker if isinstance(asker, str) else None).user_id

    def person(self, kind: str, identity: str | None) -> Caller:
        """Who this Slack user, GitHub login or Jira account is to Autan, with what their role
        allows: the user `autan.toml` maps them to, else the connector's service user (made
        on first use)."""
        mapped = self.routing.user_for(kind, identity)
        name, config = mapped or (f"{kind}-connector", UserConfig())
        try:
            with self.lifecycle.write() as (session, _events):
                user = ensure_user(
                    session, name=name, role=config.role, team=config.team,
                    email=config.email, service=mapped is None, now=utcnow(),
                )  # fmt: skip
                return _caller(kind, user)
        except (IntegrityError, ValueError):
            # A concurrent delivery made the same user first: it is there now (on PostgreSQL
            # its commit can land between our look-up and our insert, which says "exists").
            with self.lifecycle.sessions() as session:
                found = find_user(session, name=name)
                if found is None:
                    raise
                return _caller(kind, found)

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
            task, created = self.lifecycle.submit(spec, created_by=self.owner(spec))
        except IdempotencyConflict as exc:
            log.info("dropped a redelivery whose content changed: %s", exc)
            return None
        if not created:
            return None
        log.info("task %s from %s %s", task.id, spec.origin.kind, spec.origin.external_id)
        return task


def _caller(kind: str, user: User) -> Caller:
    """The user as the access rules see a caller: with every scope their role allows."""
    return Caller(
        token_id="",
        token_name=f"{kind} connector",
        user_id=user.id,
        user_name=user.name,
        role=user.role,
        team=user.team,
        scopes=ROLE_SCOPES[user.role],
    )
