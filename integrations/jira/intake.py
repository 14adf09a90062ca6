"""Jira webhooks in: a labelled issue, created or newly labelled, is queued to become a task."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations.base import Answer
from integrations.config import RepoConfig, Routing, secret
from integrations.deliveries import Deliveries
from integrations.errors import InvalidPayload, MalformedRequest, NotConfigured
from integrations.jira.config import JiraSettings
from integrations.signatures import verify
from integrations.submit import Submitter, decode_json
from orchestrator.schemas import OriginSpec, TaskSpec

EVENTS = ("jira:issue_created", "jira:issue_updated")
_BLOCK_END = object()
"""Queued after a block's children in `plain`, where its closing newline goes."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Project(_Part):
    key: str


class Fields(_Part):
    summary: str
    description: str | dict[str, Any] | None = None
    labels: list[str] = Field(default_factory=list)
    project: Project


class Issue(_Part):
    key: str
    fields: Fields


class Change(_Part):
    field: str
    fromString: str | None = None
    toString: str | None = None


class Changelog(_Part):
    items: list[Change] = Field(default_factory=list)


class JiraUser(_Part):
    accountId: str | None = None


class IssueEvent(_Part):
    webhookEvent: str
    issue: Issue
    user: JiraUser | None = None
    """Who made the change (Jira Cloud sends an account id)."""
    changelog: Changelog | None = None


class Work(BaseModel):
    """What a delivery asks of Autan, queued for the worker (`integrations.jira.processor`)."""

    key: str
    project: str
    summary: str
    description: str
    """As text (see `plain`)."""
    account: str | None = None


def task_spec(work: Work, repo: RepoConfig, key: str) -> TaskSpec:
    """The task `work` asks for on `repo`, stored under the delivery's `key`;
    ValidationError when the issue's text cannot be a task (too long, a NUL byte)."""
    return TaskSpec(
        repo=repo.url,
        ref=repo.branch,
        instruction=f"# {work.key}: {work.summary}\n\n{work.description}",
        idempotency_key=key,
        origin=OriginSpec(
            kind="jira",
            external_id=work.key,
            data={"key": work.key, "project": work.project, "account": work.account},
        ),
    )


def plain(description: str | dict[str, Any] | None) -> str:
    """A description as text: API v2 sends a string, v3 a document (ADF) of nested nodes."""
    if description is None or isinstance(description, str):
        return description or ""
    found: list[str] = []
    # A stack, not recursion: a document nested thousands deep must not exhaust the stack,
    # and a node of the wrong shape is skipped, not trusted.
    stack: list[object] = [description]
    while stack:
        node = stack.pop()
        if node is _BLOCK_END:
            found.append("\n")
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "text":
            found.append(str(node.get("text", "")))
        if node.get("type") in ("paragraph", "heading", "codeBlock", "listItem"):
            stack.append(_BLOCK_END)
        content = node.get("content")
        if isinstance(content, list):
            stack.extend(reversed(content))
    return "".join(found).strip()


class JiraIntake:
    def __init__(
        self,
        settings: JiraSettings,
        routing: Routing,
        submitter: Submitter,
        deliveries: Deliveries,
    ) -> None:
        self.settings = settings
        self.routing = routing
        self.submitter = submitter
        self.deliveries = deliveries

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        if self.settings.webhook_secret is None:
            raise NotConfigured("Jira webhooks are refused: AUTAN_JIRA_WEBHOOK_SECRET is not set")
        verify(
            secret(self.settings.webhook_secret),
            body,
            headers.get("x-hub-signature"),
            header="X-Hub-Signature",
            prefix="sha256=",
        )
        delivery = headers.get("x-atlassian-webhook-identifier")
        if not delivery:
            raise MalformedRequest("missing X-Atlassian-Webhook-Identifier header")
        payload = decode_json(body)
        kind = payload.get("webhookEvent")
        if kind not in EVENTS:
            return Answer("ignored", f"event {kind!r} is not one Autan acts on")
        try:
            event = IssueEvent.model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(f"{kind} payload: {exc}") from exc
        if reason := self._not_for_us(event):
            return Answer("ignored", reason)
        fields = event.issue.fields
        work = Work(
            key=event.issue.key,
            project=fields.project.key,
            summary=fields.summary,
            description=plain(fields.description),
            account=event.user.accountId if event.user else None,
        )
        key = f"jira:{delivery}"
        try:  # refused now, with the reason in Jira's webhook log, not later in the worker
            task_spec(work, self.routing.repos[self.routing.jira.projects[work.project]], key)
        except ValidationError as exc:
            raise InvalidPayload(f"{kind} payload makes no task: {exc}") from exc
        job = {"key": key, "work": work.model_dump(mode="json")}
        if not self.deliveries.accept(key, partial(self.submitter.later, "jira", job)):
            return Answer("duplicate", f"delivery {delivery} was already received")
        return Answer("accepted", f"task for {work.key}")

    def _not_for_us(self, event: IssueEvent) -> str:
        fields = event.issue.fields
        label = self.settings.label
        if label not in fields.labels:
            return f"{event.issue.key} is not labelled {label!r}"
        if fields.project.key not in self.routing.jira.projects:
            return f"project {fields.project.key} is not in autan.toml"
        if event.webhookEvent == "jira:issue_updated":
            changes = event.changelog.items if event.changelog else []
            added = any(
                c.field == "labels"
                and label in (c.toString or "").split()
                and label not in (c.fromString or "").split()
                for c in changes
            )
            if not added:
                return f"the update did not add the label {label!r}"
        return ""
