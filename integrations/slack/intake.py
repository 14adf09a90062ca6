"""Slack in: slash commands (`/autan REPO INSTRUCTION`, `status [ID]`, `cancel ID`, `help`) and
Events API deliveries (replies in a task's thread), both signed the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from integrations.base import Answer
from integrations.config import IntegrationSettings, Routing, secret
from integrations.deliveries import Deliveries
from integrations.errors import InvalidPayload, MalformedRequest, NotConfigured, SignatureInvalid
from integrations.signatures import check_age, verify
from integrations.slack.config import SlackSettings
from integrations.slack.events import thread_reply
from integrations.submit import Submitter, decode_json
from orchestrator.errors import TaskNotFound
from orchestrator.schemas import TaskRequest, TaskSummary, TaskView
from orchestrator.task_lists import TaskFilter, list_tasks

HELP = (Path(__file__).parent / "help.md").read_text()
REQUIRED = ("command", "user_id", "channel_id", "response_url")


def parse_form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"body is not a form: {exc}") from exc
    return {name: values[0] for name, values in parsed.items()}


def ephemeral(message: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": message}


class SlackIntake:
    def __init__(
        self,
        settings: SlackSettings,
        common: IntegrationSettings,
        routing: Routing,
        submitter: Submitter,
        deliveries: Deliveries,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.common = common
        self.routing = routing
        self.submitter = submitter
        self.lifecycle = submitter.lifecycle
        self.deliveries = deliveries
        self.clock = clock

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        self._verify(body, headers)
        if headers.get("content-type", "").startswith("application/json"):
            return thread_reply(decode_json(body), self.submitter, self.deliveries)
        form = parse_form(body)
        if missing := [name for name in REQUIRED if not form.get(name)]:
            raise InvalidPayload(f"slash command lacks {', '.join(missing)}")
        seen = f"slack:{headers['x-slack-signature']}"
        if not self.deliveries.first(seen):
            return Answer("duplicate", "request already received", body=ephemeral("Got it."))
        words = form.get("text", "").split(maxsplit=1)
        verb = words[0].lower() if words else "help"
        rest = words[1] if len(words) > 1 else ""
        if verb == "status":
            return self._status(rest.strip())
        if verb == "cancel":
            return self._cancel(form, rest.strip())
        if verb == "help":
            return self._help("")
        with self.deliveries.held(seen):
            return self._start(form, words)

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self.settings.signing_secret is None:
            raise NotConfigured("Slack commands are refused: AUTAN_SLACK_SIGNING_SECRET is not set")
        stamp, signature = (
            headers.get("x-slack-request-timestamp"),
            headers.get("x-slack-signature"),
        )
        if not stamp or not signature:
            raise SignatureInvalid("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
        limit = self.settings.max_age_s
        check_age(stamp, header="X-Slack-Request-Timestamp", now=self.clock(), limit=limit)
        # Over the raw bytes: a body that is not UTF-8 is refused as unsigned, not decoded first.
        verify(
            secret(self.settings.signing_secret),
            b"v0:" + stamp.encode() + b":" + body,
            signature,
            header="X-Slack-Signature",
            prefix="v0=",
        )

    def _help(self, problem: str) -> Answer:
        repos = ", ".join(f"`{name}`" for name in sorted(self.routing.repos)) or "none configured"
        answers = "answers in a thread" if self.settings.bot_token else "answers here"
        message = (problem + "\n\n" if problem else "") + HELP.format(repos=repos, answers=answers)
        return Answer("answered", "help", body=ephemeral(message))

    def _allowed(self, user: str) -> bool:
        users = self.routing.slack.users
        return "*" in users or user in users

    def _status(self, task_id: str) -> Answer:
        if task_id:
            try:
                return Answer(
                    "answered", "status", body=ephemeral(self._line(self.lifecycle.get(task_id)))
                )
            except TaskNotFound:
                return Answer("answered", "status", body=ephemeral(f"No task `{task_id}`."))
        with self.lifecycle.sessions() as session:
            page = list_tasks(session, filters=TaskFilter(origin="slack"), limit=5)
            lines = [self._line(TaskSummary.of(t)) for t in page.items]
        return Answer("answered", "status", body=ephemeral("\n".join(lines) or "No tasks yet."))

    def _line(self, task: TaskView | TaskSummary) -> str:
        title = task.title if isinstance(task, TaskSummary) else task.instruction.split("\n")[0]
        return f"`{task.id}` {task.state}: {title[:80]} <{self.common.task_url(task.id)}|details>"

    def _cancel(self, form: dict[str, str], task_id: str) -> Answer:
        if not self._allowed(form["user_id"]):
            return Answer("answered", "not allowed", body=ephemeral("You may not cancel tasks."))
        if not task_id:
            return self._help("Which task? `/autan cancel ID`")
        try:
            task = self.lifecycle.cancel(task_id, by=f"Slack user {form['user_id']}")
        except TaskNotFound:
            return Answer("answered", "cancel", body=ephemeral(f"No task `{task_id}`."))
        return Answer(
            "answered", "cancel", task.id, body=ephemeral(f"Task `{task.id}`: {task.state}.")
        )

    def _start(self, form: dict[str, str], words: list[str]) -> Answer:
        if not self._allowed(form["user_id"]):
            return Answer(
                "answered",
                "not allowed",
                body=ephemeral(
                    "You are not among the Slack users allowed to start work "
                    "(autan.toml, [slack] users)."
                ),
            )
        name, instruction = (words[0], words[1] if len(words) > 1 else "")
        if name not in self.routing.repos:
            default = self.routing.slack.channels.get(form["channel_id"])
            if default is None:
                return self._help(f"`{name}` is not a repository I know.")
            name, instruction = default, " ".join(words)
        if not instruction.strip():
            return self._help("What should I do? `/autan REPO INSTRUCTION`")
        try:
            # Checked here, before "On it": refused later, the worker could only fail.
            TaskRequest(repo=self.routing.repos[name].url, instruction=instruction)
        except ValidationError as exc:
            problem = exc.errors(include_url=False, include_input=False)[0]["msg"]
            why = problem.removeprefix("Value error, ")
            return self._help(f"That instruction cannot become a task: {why}.")
        key = f"slack:{form['channel_id']}:{form.get('trigger_id') or form['response_url']}"
        # Only what the thread and the task need: the form also carries Slack's
        # legacy verification token, which must not rest in Redis.
        asker = {name: form.get(name) for name in ("team_id", *REQUIRED[1:])}
        job = {"key": key, "form": asker, "name": name, "instruction": instruction}
        self.submitter.later("slack", job)
        # Without a bot token, answers go to the command's response_url: no thread.
        where = "I answer in a thread" if self.settings.bot_token else "I answer here"
        return Answer("accepted", f"task on {name}", body=ephemeral(f"On it: `{name}`. {where}."))
