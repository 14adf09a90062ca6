"""GitHub webhooks in: verify, drop redeliveries, and queue issues and mentions for a worker."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from pydantic import ValidationError

from integrations import text
from integrations.base import Answer
from integrations.config import Routing, secret
from integrations.deliveries import Deliveries
from integrations.errors import InvalidPayload, MalformedRequest, NotConfigured
from integrations.github import payloads as p
from integrations.github.config import GitHubSettings
from integrations.signatures import verify
from integrations.submit import Submitter, decode_json


class GitHubIntake:
    def __init__(
        self,
        settings: GitHubSettings,
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
            raise NotConfigured(
                "GitHub webhooks are refused: AUTAN_GITHUB_WEBHOOK_SECRET is not set"
            )
        verify(
            secret(self.settings.webhook_secret),
            body,
            headers.get("x-hub-signature-256"),
            header="X-Hub-Signature-256",
            prefix="sha256=",
        )
        event, delivery = headers.get("x-github-event"), headers.get("x-github-delivery")
        if not event or not delivery:
            raise MalformedRequest("missing X-GitHub-Event or X-GitHub-Delivery header")
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise MalformedRequest(
                "this webhook sends a form (application/x-www-form-urlencoded): "
                "choose `application/json` as its content type in the webhook's settings"
            )
        payload = decode_json(body)
        if event == "ping":
            return Answer("answered", "pong")
        if event not in p.EVENTS:
            return Answer("ignored", f"event {event!r} is not one Autan acts on")
        try:
            parsed = p.EVENTS[event].model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(f"{event} payload: {exc}") from exc
        work = self._work(parsed)
        if isinstance(work, str):
            return Answer("ignored", work)
        if self.routing.by_github(work.repo) is None:
            return Answer("ignored", f"repository {work.repo} is not in autan.toml")
        key = f"github:{delivery}"
        job = {"key": key, "work": work.model_dump(mode="json")}
        if not self.deliveries.accept(key, partial(self.submitter.later, "github", job)):
            return Answer("duplicate", f"delivery {delivery} was already received")
        return Answer("accepted", f"{work.kind} on {work.repo}#{work.number}")

    def _work(self, event: p.Event) -> p.Work | str:
        """What the event asks of Autan, or why it asks nothing."""
        base = {"repo": event.repository.full_name, "sender": event.sender.login}
        if event.sender.type == "Bot":
            return "sent by a bot"
        if isinstance(event, p.IssuesEvent):
            if event.action != "labeled" or event.label is None:
                return f"issues action {event.action!r} is not `labeled`"
            if event.label.name != self.settings.label:
                return f"label {event.label.name!r} is not {self.settings.label!r}"
            return p.Work(kind="issue", number=event.issue.number, **base)
        if isinstance(event, p.IssueCommentEvent):
            if event.action != "created" or not text.mentions(event.comment.body):
                return f"comment does not mention {text.MENTION}"
            kind = "pr-comment" if event.issue.pull_request is not None else "issue-comment"
            return p.Work(kind=kind, number=event.issue.number, asked=event.comment.body, **base)
        if isinstance(event, p.ReviewEvent | p.ReviewCommentEvent):
            return self._review(event, base)
        return "not an event Autan acts on"

    @staticmethod
    def _review(event: p.ReviewEvent | p.ReviewCommentEvent, base: dict[str, str]) -> p.Work | str:
        asked = event.review.body if isinstance(event, p.ReviewEvent) else event.comment.body
        if not text.mentions(asked):
            return f"review does not mention {text.MENTION}"
        pull = event.pull_request
        if pull.head.repo is None or pull.head.repo.full_name != event.repository.full_name:
            return "the pull request's branch is in a fork Autan cannot push to"
        if isinstance(event, p.ReviewCommentEvent) and event.comment.path:
            asked = f"On `{event.comment.path}`:\n```\n{event.comment.diff_hunk}\n```\n{asked}"
        return p.Work(
            kind="review", number=pull.number, asked=asked or "", branch=pull.head.ref, **base
        )
