"""What a worker fetches a repository with: autan.toml's credentials for it, or for a GitHub
URL the token GitHub pushes use; handed to git for that one command (sandbox.gitauth)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from github import GithubException

from integrations.connectors import Loaded
from integrations.errors import NotConfigured
from integrations.github.client import GitHubAccess
from integrations.github.config import GitHubSettings
from sandbox.errors import TreeError
from sandbox.gitauth import GitCredentials

GITHUB_HOST = "github.com"


def github_hosts(settings: GitHubSettings) -> set[str]:
    """github.com, and a GitHub Enterprise server's own host (its API at /api/v3)."""
    api = urlsplit(settings.api_url).hostname or ""
    return {GITHUB_HOST} | ({api} if api and api != f"api.{GITHUB_HOST}" else set())


class RepoCredentials:
    """Credentials per repository URL (`sandbox.gitauth.Credentials`)."""

    def __init__(self, loaded: Loaded) -> None:
        self._routing = loaded.routing
        self._github = GitHubAccess(loaded.github) if "github" not in loaded.refused else None
        self._github_hosts = github_hosts(loaded.github)

    @classmethod
    def from_env(cls) -> RepoCredentials:
        return cls(Loaded.from_env())

    def __call__(self, url: str) -> GitCredentials | None:
        found = self._routing.by_url(url)
        if found is not None:
            name, repo = found
            if repo.ssh_key is not None:
                return GitCredentials(ssh_key=repo.ssh_key)
            if repo.token_env:
                token = os.environ.get(repo.token_env, "")
                if not token:
                    raise TreeError(
                        f"repository {name!r} wants a token from {repo.token_env}, which is "
                        "not set in the worker's environment"
                    )
                return GitCredentials(token=token, username=repo.username)
        if self._github is not None and urlsplit(url).hostname in self._github_hosts:
            try:
                return GitCredentials(token=self._github.push_token())
            except NotConfigured:
                return None
            except (GithubException, OSError) as exc:  # the App's token could not be had
                raise TreeError(f"could not get a GitHub token to fetch {url}: {exc}") from exc
        return None
