"""GitHub deliveries finished in a worker: check the sender, then pass a comment on to the
running task of its pull request, or read the issue and submit a task."""

from __future__ import annotations

import logging
from typing import Any

from github import GithubException
from github.Repository import Repository

from integrations.config import IntegrationSettings, RepoConfig, Routing
from integrations.errors import ServiceError
from integrations.github import payloads as p
from integrations.github.client import GitHubAccess
from integrations.github.config import GitHubSettings
from integrations.github.instruction import Comment, instruction
from integrations.github.messages import told
from integrations.github.publish import issue_marker
from integrations.routing_file import FreshProcessor, watched
from integrations.submit import Submitter
from orchestrator.lifecycle import Lifecycle
from orchestrator.schemas import OriginSpec, TaskSpec

log = logging.getLogger(__name__)

WRITERS = frozenset({"admin", "maintain", "write"})


class GitHubProcessor:
    """The `autan.intakes: github` processor; its payload is `{"key", "work"}` from the intake."""

    def __init__(self, settings: GitHubSettings, routing: Routing) -> None:
        self.settings = settings
        self.routing = routing
        self.access = GitHubAccess(settings)

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        work, key = p.Work.model_validate(payload["work"]), str(payload["key"])
        found = self.routing.by_github(work.repo)
        if found is None:
            log.info("%s: repository %s left autan.toml: ignored", key, work.repo)
            return
        submitter = Submitter(lifecycle, self.routing)
        try:
            repo = self.access.api().get_repo(work.repo)
            permission = repo.get_collaborator_permission(work.sender)
            if permission not in WRITERS:
                log.info("%s: %s has %s access, not write: ignored", key, work.sender, permission)
                return
            if work.kind == "pr-comment" and told(repo, work, key, submitter):
                return
            spec = self._spec(repo, work, found[1], key)
        except GithubException as exc:  # the job is retried with back-off
            raise ServiceError(f"GitHub answered {exc.status} for {key}: {exc.data}") from exc
        if spec is not None:
            submitter.submit(spec)

    def _spec(
        self, repo: Repository, work: p.Work, repo_cfg: RepoConfig, key: str
    ) -> TaskSpec | None:
        branch = work.branch or self._branch_of(repo, work)
        if work.kind == "pr-comment" and branch is None:
            log.info("%s: pull request #%s is not Autan's: ignored", key, work.number)
            return None
        issue = repo.get_issue(work.number)
        told = instruction(
            issue.title,
            issue.body or "",
            [Comment(c.user.login, c.body or "") for c in issue.get_comments()],
            asked=work.asked,
            sender=work.sender,
            bot_login=self.settings.bot_login,
        )
        return TaskSpec(
            repo=repo_cfg.url,
            ref=branch or repo_cfg.branch or repo.default_branch,
            instruction=told,
            idempotency_key=key,
            origin=OriginSpec(
                kind="github",
                external_id=f"{work.repo}#{work.number}",
                data={
                    "repo": work.repo,
                    "number": work.number,
                    "kind": work.kind,
                    "sender": work.sender,
                    "branch": branch,
                },
            ),
        )

    @staticmethod
    def _branch_of(repo: Repository, work: p.Work) -> str | None:
        """The branch of Autan's open pull request for this issue or pull request, if any."""
        if work.kind == "pr-comment":
            head = repo.get_pull(work.number).head.ref
            return head if head.startswith("autan/") else None
        if work.kind == "issue-comment":
            mark = issue_marker(work.repo, work.number)
            for pull in repo.get_pulls(state="open"):
                if pull.head.ref.startswith("autan/") and mark in (pull.body or ""):
                    return str(pull.head.ref)
        return None


def processor() -> FreshProcessor:
    """Entry point `autan.intakes: github`: settings from the environment, autan.toml kept
    current."""
    source = watched(IntegrationSettings().data_dir / "autan.toml")
    return FreshProcessor(GitHubProcessor(GitHubSettings(), source.routing), source)
