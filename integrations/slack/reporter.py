"""Slack reports: the result in the task's thread (once, found again by its metadata)."""

from __future__ import annotations

from typing import Any

from slack_sdk.webhook import WebhookClient

from integrations import text
from integrations.config import IntegrationSettings
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.report_errors import by_status, calling
from integrations.routing_file import FreshReporter, watched
from integrations.slack.client import web_client
from integrations.slack.config import SlackSettings
from orchestrator.reporting import Steps
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

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        """Side effects `publish` then `reply` in the task's thread."""
        steps = steps or Steps()
        data = task.origin.data
        published = self.publisher.publish_step(steps, task)
        lines = text.outcome(
            task, self.common.task_url(task.id), published.pull_url if published else None
        )
        message = "\n".join([f"Task `{task.id}`", *lines])
        steps.run("reply", lambda: self._reply(task.id, data, message))

    def _reply(self, task_id: str, data: dict[str, Any], message: str) -> str:
        client = web_client(self.settings)
        channel, thread_ts = data.get("channel"), data.get("thread_ts")
        with calling("Slack"):
            if client is None or not (channel and thread_ts):
                # No thread to answer in: the command's response_url (good for 30 minutes).
                sent = WebhookClient(str(data["response_url"])).send(
                    text=message, response_type="in_channel"
                )
                if sent.status_code >= 300:
                    raise by_status("Slack", sent.status_code, sent.body, sent.headers)
                return ""
            replies = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True
            )
            if any(self._ours(m, task_id) for m in replies.get("messages") or []):
                return ""
            client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=message,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"task_id": task_id}},
            )
        return ""

    @staticmethod
    def _ours(message: dict[str, Any], task_id: str) -> bool:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        return bool(meta.get("event_type") == EVENT_TYPE and payload.get("task_id") == task_id)


def reporter() -> FreshReporter:
    """Entry point `autan.reporters: slack`, autan.toml kept current."""
    common = IntegrationSettings()
    source = watched(common.data_dir / "autan.toml")
    publisher = Publisher(GitHubSettings(), common, source.routing)
    return FreshReporter(SlackReporter(SlackSettings(), common, publisher), source)
