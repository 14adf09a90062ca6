"""Jira reports: one comment with the result and the pull request, then the review transition."""

from __future__ import annotations

from jira import JIRA

from integrations import text
from integrations.config import IntegrationSettings, secret
from integrations.errors import NotConfigured, ServiceRefused
from integrations.github.config import GitHubSettings
from integrations.github.publish import Publisher
from integrations.jira.config import JiraSettings
from integrations.report_errors import calling
from integrations.routing_file import FreshReporter, watched
from orchestrator.reporting import Steps
from orchestrator.schemas import TaskView
from orchestrator.states import TaskState


def jira_marker(task_id: str) -> str:
    """Jira renders no hidden comments: a short footer instead."""
    return f"(autan task {task_id})"


class JiraReporter:
    def __init__(
        self, settings: JiraSettings, common: IntegrationSettings, publisher: Publisher
    ) -> None:
        self.settings = settings
        self.common = common
        self.publisher = publisher

    def client(self) -> JIRA:
        s = self.settings
        if not (s.url and s.email and s.token is not None):
            raise NotConfigured("Jira: set AUTAN_JIRA_URL, AUTAN_JIRA_EMAIL and AUTAN_JIRA_TOKEN")
        return JIRA(
            server=s.url,
            basic_auth=(s.email, secret(s.token)),
            get_server_info=False,
            max_retries=s.retries,
            timeout=15,
        )

    def report(self, task: TaskView, steps: Steps | None = None) -> None:
        """Side effects `publish`, `comment`, then `transition` (a verified change only);
        a refused one is recorded and the others still happen."""
        steps = steps or Steps()
        key = str(task.origin.data["key"])
        published = self.publisher.publish_step(steps, task)
        lines = text.outcome(
            task, self.common.task_url(task.id), published.pull_url if published else None
        )
        mark = jira_marker(task.id)

        def comment() -> str:
            with calling("Jira"):
                jira = self.client()
                if not any(mark in (c.body or "") for c in jira.comments(key)):
                    jira.add_comment(key, "\n\n".join([*lines, mark]))
            return ""

        steps.run("comment", comment)
        if task.state == TaskState.SUCCEEDED and published is not None:
            steps.run("transition", lambda: self._move(key))

    def _move(self, key: str) -> str:
        """The status the issue is left in; ServiceRefused when no transition leads there."""
        wanted = self.settings.review_status.lower()
        with calling("Jira"):
            jira = self.client()
            status = jira.issue(key, fields="status").fields.status.name
            if status.lower() == wanted:
                return str(status)
            for transition in jira.transitions(key):
                if wanted in (transition["name"].lower(), transition["to"]["name"].lower()):
                    jira.transition_issue(key, transition["id"])
                    return str(transition["to"]["name"])
        raise ServiceRefused(
            f"Jira: {key} has no transition to {self.settings.review_status!r} from {status!r}"
        )


def reporter() -> FreshReporter:
    """Entry point `autan.reporters: jira`, autan.toml kept current."""
    common = IntegrationSettings()
    source = watched(common.data_dir / "autan.toml")
    publisher = Publisher(GitHubSettings(), common, source.routing)
    return FreshReporter(JiraReporter(JiraSettings(), common, publisher), source)
