"""Sentry reports: one comment on the issue with the result and the pull request."""

from __future__ import annotations

from integrations import text
from integrations.config import IntegrationSettings
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.routing_file import FreshReporter, watched
from integrations.sentry.api import SentryApi
from integrations.sentry.config import SentrySettings
from orchestrator.reporting import Steps
from orchestrator.schemas import TaskView


def sentry_marker(task_id: str) -> str:
    return f"(autan task {task_id})"


class SentryReporter:
    def __init__(
        self, settings: SentrySettings, common: IntegrationSettings, publisher: Publisher
    ) -> None:
        self.api = SentryApi(settings)
        self.common = common
        self.publisher = publisher

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        """Side effects `publish` then `comment` on the Sentry issue."""
        steps = steps or Steps()
        issue_id = str(task.origin.data["issue_id"])
        published = self.publisher.publish_step(steps, task)
        lines = text.outcome(
            task, self.common.task_url(task.id), published.pull_url if published else None
        )
        mark = sentry_marker(task.id)

        def comment() -> str:
            notes = self.api.comments(issue_id)
            if not any(mark in str((n.get("data") or {}).get("text", "")) for n in notes):
                self.api.comment(issue_id, "\n\n".join([*lines, mark]))
            return ""

        steps.run("comment", comment)


def reporter() -> FreshReporter:
    """Entry point `autan.reporters: sentry`, autan.toml kept current."""
    common = IntegrationSettings()
    source = watched(common.data_dir / "autan.toml")
    publisher = Publisher(GitHubSettings(), common, source.routing)
    return FreshReporter(SentryReporter(SentrySettings(), common, publisher), source)
