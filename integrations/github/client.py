"""PyGithub clients from settings: a personal token, or a GitHub App's installation token."""

from __future__ import annotations

from github import Auth, Github, GithubIntegration

from integrations.config import secret
from integrations.errors import NotConfigured
from integrations.github.config import GitHubSettings


class GitHubAccess:
    """Builds API clients and the token the worker pushes branches with."""

    def __init__(self, settings: GitHubSettings) -> None:
        self.settings = settings

    def _auth(self) -> Auth.Auth:
        s = self.settings
        if s.token is not None:
            return Auth.Token(secret(s.token))
        if s.app_id and s.app_private_key is not None and s.app_installation_id:
            app = Auth.AppAuth(s.app_id, secret(s.app_private_key))
            return app.get_installation_auth(s.app_installation_id)
        raise NotConfigured(
            "GitHub: set AUTAN_GITHUB_TOKEN, or AUTAN_GITHUB_APP_ID, "
            "AUTAN_GITHUB_APP_PRIVATE_KEY and AUTAN_GITHUB_APP_INSTALLATION_ID"
        )

    def api(self) -> Github:
        s = self.settings
        return Github(
            auth=self._auth(),
            base_url=s.api_url,
            seconds_between_requests=s.request_interval_s or None,
            seconds_between_writes=s.write_interval_s or None,
            retry=s.retries,
            timeout=15,
        )

    def push_token(self) -> str:
        """The token git pushes with: the personal token, or a fresh installation token."""
        s = self.settings
        if s.token is not None:
            return secret(s.token)
        if s.app_id and s.app_private_key is not None and s.app_installation_id:
            app = Auth.AppAuth(s.app_id, secret(s.app_private_key))
            with GithubIntegration(auth=app, base_url=s.api_url) as integration:
                return integration.get_access_token(s.app_installation_id).token
        self._auth()  # raises NotConfigured with the names to set
        return ""
