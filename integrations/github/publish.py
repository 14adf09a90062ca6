"""A task's result as a branch and a pull request: what every reporter links to."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from github import GithubException

from integrations import text
from integrations.config import IntegrationSettings, RepoConfig, Routing
from integrations.errors import NotConfigured
from integrations.github.client import GitHubAccess
from integrations.github.config import GitHubSettings
from integrations.gitpush import push_branch
from integrations.report_errors import by_status, calling
from orchestrator.reporting import Steps
from orchestrator.schemas import TaskView
from orchestrator.states import TaskState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    branch: str
    sha: str
    pull_url: str | None
    """The pull request's page; None when the repository is not on GitHub."""


def issue_marker(repo: str, number: int) -> str:
    """In the body of a pull request made for an issue, so follow-ups find its branch."""
    return f"<!-- autan:issue:{repo}#{number} -->"


class Publisher:
    """Pushes `autan/<task>` (or the branch a follow-up names) and opens one pull request."""

    def __init__(
        self, settings: GitHubSettings, common: IntegrationSettings, routing: Routing
    ) -> None:
        self.settings = settings
        self.common = common
        self.routing = routing
        self.access = GitHubAccess(settings)

    def repo_of(self, task: TaskView) -> RepoConfig:
        found = self.routing.by_url(task.repo)
        if found is None:
            raise NotConfigured(f"{task.repo} is not a repository in autan.toml: cannot push")
        return found[1]

    def publish_step(self, steps: Steps, task: TaskView) -> Published | None:
        """`publish` as the report's `publish` side effect: done once, its result kept for
        the retries; None when there is nothing to publish or it was refused."""

        def effect() -> str:
            with calling("GitHub"):
                published = self.publish(task)
            return json.dumps(asdict(published)) if published else ""

        found = steps.run("publish", effect)
        return Published(**json.loads(found)) if found else None

    def publish(self, task: TaskView) -> Published | None:
        """None when the task changed nothing, or its change is unverified and reports of
        unverified changes are comments only; idempotent by task id."""
        draft_unverified = self.common.report_unverified == "draft"
        if not text.has_changes(task, unverified=draft_unverified):
            return None
        assert task.result is not None
        repo = self.repo_of(task)
        named_branch = task.origin.data.get("branch")
        branch = str(named_branch or f"autan/{task.id}")
        try:
            gh_repo = self.access.api().get_repo(repo.github) if repo.github else None
            base = task.ref or repo.branch or (gh_repo.default_branch if gh_repo else "main")
            pushed = push_branch(
                url=repo.url,
                base=base,
                branch=branch,
                diff=task.result.diff,
                message=text.title(task),
                task_id=task.id,
                token=self.access.push_token() if repo.url.startswith("http") else None,
            )
            if gh_repo is None or repo.github is None:
                return Published(branch, pushed.sha, None)
            owner = repo.github.split("/", 1)[0]
            for pull in gh_repo.get_pulls(state="all", head=f"{owner}:{branch}"):
                return Published(branch, pushed.sha, pull.html_url)
            if named_branch:  # a follow-up whose pull request was closed: the branch is enough
                return Published(branch, pushed.sha, None)
            pull = gh_repo.create_pull(
                base=base,
                head=branch,
                title=text.title(task),
                body=self._body(task),
                draft=self.settings.draft or task.state == TaskState.UNVERIFIED,
            )
        except GithubException as exc:
            raise by_status("GitHub", exc.status, exc.data, exc.headers) from exc
        log.info("task %s: opened %s", task.id, pull.html_url)
        return Published(branch, pushed.sha, pull.html_url)

    def _body(self, task: TaskView) -> str:
        lines = text.outcome(task, self.common.task_url(task.id), full_commit=True)
        data = task.origin.data
        if task.origin.kind == "github" and data.get("number"):
            # `Fixes` closes the issue when the pull request is merged: only for a proven fix.
            verb = "Fixes" if text.verdict(task) == "verified" else "For"
            lines.append(f"\n{verb} #{data['number']}.")
            lines.append(issue_marker(str(data["repo"]), int(data["number"])))
        lines.append(text.marker(task.id))
        return "\n\n".join(lines)
