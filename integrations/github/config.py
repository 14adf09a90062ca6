"""Settings of the GitHub connector: webhook secret, token or App, label, draft pull requests."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.config import refuse_placeholder


class GitHubSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_GITHUB_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_GITHUB_", extra="ignore")

    webhook_secret: SecretStr | None = None
    """The secret set on the webhook; unset, `POST /hooks/github` refuses every delivery."""

    token: SecretStr | None = None
    """A personal or fine-grained token (contents, issues, pull requests: read and write)."""

    app_id: str | None = None
    """A GitHub App's id, used instead of `token` together with its key and installation."""

    app_private_key: SecretStr | None = None
    """The App's private key (PEM text)."""

    app_installation_id: int | None = None
    """The App's installation on the organisation or account whose repositories it serves."""

    api_url: str = "https://api.github.com"
    """REST API base; `https://HOST/api/v3` for GitHub Enterprise Server."""

    bot_login: str | None = None
    """The login Autan posts as (an App's `NAME[bot]`, or the token's user): its comments are
    left out of what the agent is told, as is anything carrying Autan's hidden marker."""

    label: str = "autan"
    """The issue label that hands an issue to Autan."""

    draft: bool = True
    """Open pull requests as drafts (a person marks them ready)."""

    request_interval_s: float = Field(default=0.25, ge=0)
    """Least time between two API calls (PyGithub's throttle, kind to rate limits)."""

    write_interval_s: float = Field(default=1.0, ge=0)
    """Least time between two API writes (GitHub asks for a second)."""

    retries: int = Field(default=3, ge=0)
    """Times an API call failing with a server error or a rate limit is tried again."""

    @field_validator("webhook_secret", "token", "app_private_key")
    @classmethod
    def _real(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value, "a GitHub secret")
