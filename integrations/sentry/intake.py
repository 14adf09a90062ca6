"""Sentry webhooks in: a new issue or a triggered alert is queued to become a fix-it task."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from integrations.base import Answer
from integrations.config import Routing, secret
from integrations.deliveries import Deliveries
from integrations.errors import InvalidPayload, MalformedRequest, NotConfigured, SignatureInvalid
from integrations.sentry.config import SentrySettings
from integrations.signatures import check_age, verify
from integrations.submit import Submitter, decode_json

PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")
ACTIONS = {"issue": "created", "event_alert": "triggered"}


class Problem(BaseModel):
    """The fields of an issue (`data.issue`) or an event (`data.event`) Autan reads."""

    model_config = ConfigDict(extra="ignore")

    issue_id: str
    title: str
    culprit: str | None = None
    project: str
    link: str | None = None


def _object(parent: object, name: str) -> dict[str, Any]:
    """`parent[name]` when both are JSON objects; InvalidPayload naming `name` otherwise."""
    found = parent.get(name) if isinstance(parent, dict) else None
    if not isinstance(found, dict):
        raise InvalidPayload(f"payload lacks the object {name!r}")
    return found


def problem_of(resource: str, data: object) -> Problem:
    """The problem a payload names; InvalidPayload when its fields are missing or mis-typed."""
    try:
        if resource == "issue":
            issue = _object(data, "issue")
            project = issue.get("project")
            if isinstance(project, dict):
                project = project.get("slug") or project.get("id")
            return Problem(
                issue_id=_text(issue.get("id")),
                title=issue.get("title"),
                culprit=issue.get("culprit"),
                project=_text(project),
                link=issue.get("permalink") or issue.get("web_url"),
            )
        event = _object(data, "event")
        found = PROJECT_IN_URL.search(str(event.get("url") or ""))
        return Problem(
            issue_id=_text(event.get("issue_id")),
            title=event.get("title"),
            culprit=event.get("culprit"),
            project=found.group(1) if found else _text(event.get("project")),
            link=event.get("web_url"),
        )
    except ValidationError as exc:
        raise InvalidPayload(f"{resource} payload: {exc}") from exc


def _text(value: object) -> Any:
    """Sentry sends ids as numbers or strings; anything else is left for validation to refuse."""
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else value


class SentryIntake:
    def __init__(
        self,
        settings: SentrySettings,
        routing: Routing,
        submitter: Submitter,
        deliveries: Deliveries,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.routing = routing
        self.submitter = submitter
        self.deliveries = deliveries

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        if self.settings.client_secret is None:
            raise NotConfigured(
                "Sentry webhooks are refused: AUTAN_SENTRY_CLIENT_SECRET is not set"
            )
        signature = headers.get("sentry-hook-signature")
        verify(
            secret(self.settings.client_secret),
            body,
            signature,
            header="Sentry-Hook-Signature",
            prefix="",
        )
        # Sentry signs the body only; its timestamp still bounds how late a copy is taken.
        stamp = headers.get("sentry-hook-timestamp")
        if not stamp:
            raise SignatureInvalid("missing Sentry-Hook-Timestamp header")
        limit = self.settings.max_age_s
        check_age(stamp, header="Sentry-Hook-Timestamp", now=self.clock(), limit=limit)
        resource = headers.get("sentry-hook-resource")
        if not resource:
            raise MalformedRequest("missing Sentry-Hook-Resource header")
        payload = decode_json(body)
        if resource not in ACTIONS:
            return Answer("ignored", f"resource {resource!r} is not one Autan acts on")
        if payload.get("action") != ACTIONS[resource]:
            return Answer(
                "ignored",
                f"{resource} action {payload.get('action')!r} is not {ACTIONS[resource]!r}",
            )
        problem = problem_of(resource, payload.get("data"))
        if problem.project not in self.routing.sentry.projects:
            return Answer("ignored", f"project {problem.project} is not in autan.toml")
        key = f"sentry:{headers.get('request-id') or signature}"
        job = {"key": key, "problem": problem.model_dump(mode="json")}
        if not self.deliveries.accept(key, partial(self.submitter.later, "sentry", job)):
            return Answer("duplicate", "delivery already received")
        return Answer("accepted", f"issue {problem.issue_id}")
