"""Slack commands finished in a worker: open the thread, submit the task, say where to follow."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from integrations.config import IntegrationSettings, Routing
from integrations.routing_file import FreshProcessor, watched
from integrations.slack.client import web_client
from integrations.slack.config import SlackSettings
from integrations.slack.events import pass_on
from integrations.submit import Submitter
from orchestrator import store
from orchestrator.lifecycle import Lifecycle
from orchestrator.schemas import OriginSpec, TaskSpec

log = logging.getLogger(__name__)


class SlackProcessor:
    """The `autan.intakes: slack` processor; its payload is `{"key", "form", "name",
    "instruction"}` from a command, the form without Slack's verification token, or
    `{"key", "reply"}` from a reply in a task's thread."""

    def __init__(
        self, settings: SlackSettings, common: IntegrationSettings, routing: Routing
    ) -> None:
        self.settings = settings
        self.common = common
        self.routing = routing

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        if "reply" in payload:  # a reply in a task's thread, from the Events API
            submitter = Submitter(lifecycle, self.routing)
            client = web_client(self.settings)
            pass_on(payload["reply"], str(payload["key"]), submitter, client, self.common)
            return
        key, name, form = str(payload["key"]), str(payload["name"]), payload["form"]
        with lifecycle.sessions() as session:
            if store.find_task_by_key(session, idempotency_key=key) is not None:
                return  # a retried job whose task exists: its thread was opened already
        repo = self.routing.repos.get(name)
        if repo is None:
            log.info("%s: repository %s left autan.toml: ignored", key, name)
            return
        channel, user = form["channel_id"], form["user_id"]
        instruction = str(payload["instruction"])
        client = web_client(self.settings)
        thread_ts = None
        try:
            if client is not None:
                opened = client.chat_postMessage(
                    channel=channel, text=f"<@{user}> asked on `{name}`: {instruction[:2000]}"
                )
                thread_ts = str(opened["ts"])
        except SlackApiError as exc:
            log.warning("Slack refused the thread's first message: %s", exc.response.get("error"))
        task = Submitter(lifecycle, self.routing).submit(
            TaskSpec(
                repo=repo.url,
                ref=repo.branch,
                instruction=instruction,
                idempotency_key=key,
                origin=OriginSpec(
                    kind="slack",
                    external_id=f"{channel}:{thread_ts or ''}",
                    data={
                        "team": form.get("team_id"),
                        "channel": channel,
                        "user": user,
                        "thread_ts": thread_ts,
                        "response_url": form["response_url"],
                    },
                ),
            )
        )
        if task is None:
            return
        note = f"Task `{task.id}` queued: {self.common.task_url(task.id)}"
        try:
            if client is not None and thread_ts:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=note)
            else:
                WebhookClient(form["response_url"]).send(text=note, response_type="ephemeral")
        except SlackApiError as exc:  # the task runs; its report still comes to the thread
            log.warning("Slack refused the task's note: %s", exc.response.get("error"))


def processor() -> FreshProcessor:
    """Entry point `autan.intakes: slack`: settings from the environment, autan.toml kept
    current."""
    common = IntegrationSettings()
    source = watched(common.data_dir / "autan.toml")
    return FreshProcessor(SlackProcessor(SlackSettings(), common, source.routing), source)
