"""GitHub reports: the branch and pull request, then one comment on the issue, keyed by task."""

from __future__ import annotations

from integrations import text
from integrations.config import IntegrationSettings, Routing
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.report_errors import calling
from integrations.routing_file import FreshReporter, watched
from orchestrator.reporting import Steps
from orchestrator.schemas import TaskView


class GitHubReporter:
    def __init__(
        self, settings: GitHubSettings, common: IntegrationSettings, routing: Routing
    ) -> None:
        self.common = common
        self.publisher = Publisher(settings, common, routing)

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        """Side effects `publish` then `comment`; a refused push is said in the comment."""
        steps = steps or Steps()
        data = task.origin.data
        published = self.publisher.publish_step(steps, task)
        problem = steps.refusal("publish")
        lines = text.outcome(
            task,
            self.common.task_url(task.id),
            published.pull_url if published else None,
            full_commit=True,
        )
        if published and not published.pull_url:
            lines.insert(1, f"Pushed to `{published.branch}` ({published.sha[:12]}).")
        if problem:
            lines.insert(1, f"The change could not be pushed: {problem}")
        mark = text.marker(task.id)

        def comment() -> str:
            with calling("GitHub"):
                issue = self.publisher.access.api().get_repo(str(data["repo"]))
                thread = issue.get_issue(int(data["number"]))
                if not any(mark in (c.body or "") for c in thread.get_comments()):
                    thread.create_comment("\n\n".join([*lines, mark]))
            return ""

        steps.run("comment", comment)


def reporter() -> FreshReporter:
    """Entry point `autan.reporters: github`, autan.toml kept current."""
    common = IntegrationSettings()
    source = watched(common.data_dir / "autan.toml")
    return FreshReporter(GitHubReporter(GitHubSettings(), common, source.routing), source)
