"""Slack reports: the result in the task's thread (once, found again by its metadata)."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from integrations import text
from integrations.config import IntegrationSettings, Routing
from integrations.errors import ServiceError
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.slack.client import web_client
from integrations.slack.config import SlackSettings
from orchestrator.schemas import TaskView

EVENT_TYPE = "autan_task_report"


class SlackReporter:
    def __init__(
        self,
        settings: SlackSettings,
        common: IntegrationSettings,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self.common = common
        self.publisher = publisher

    def report(self, task: TaskView) -> None:
        data = task.origin.data
        published = self.publisher.publish(task)
        lines = text.outcome(
            task, self.common.task_url(task.id), published.pull_url if published else None
        )
        message = "\n".join([f"Task `{task.id}`", *lines])
        client = web_client(self.settings)
        channel, thread_ts = data.get("channel"), data.get("thread_ts")
        if client is None or not (channel and thread_ts):
            # No thread to answer in: the command's response_url (good for 30 minutes).
            WebhookClient(str(data["response_url"])).send(text=message, response_type="in_channel")
            return
        try:
            replies = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True
            )
            if any(self._ours(m, task.id) for m in replies.get("messages") or []):
                return
            client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=message,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"task_id": task.id}},
            )
        except SlackApiError as exc:
            raise ServiceError(f"Slack answered {exc.response.get('error')}") from exc

    @staticmethod
    def _ours(message: dict[str, Any], task_id: str) -> bool:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        return bool(meta.get("event_type") == EVENT_TYPE and payload.get("task_id") == task_id)


def reporter() -> SlackReporter:
    """Entry point `autan.reporters: slack`."""
    common = IntegrationSettings()
    routing = Routing.load(common.data_dir / "autan.toml")
    return SlackReporter(SlackSettings(), common, Publisher(GitHubSettings(), common, routing))
