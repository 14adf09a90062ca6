"""Settings of the Jira connector: webhook secret, site, account, label, review status."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.config import refuse_placeholder


class JiraSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_JIRA_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_JIRA_", extra="ignore")

    webhook_secret: SecretStr | None = None
    """The webhook's secret; unset, `POST /hooks/jira` refuses every delivery."""

    url: str = ""
    """The site, e.g. `https://acme.atlassian.net`."""

    email: str = ""
    """The account Autan comments as."""

    token: SecretStr | None = None
    """That account's API token."""

    label: str = "autan"
    """The issue label that hands an issue to Autan."""

    review_status: str = "In Review"
    """Where a reported issue moves: a transition's name, or the name of the status it leads to."""

    retries: int = Field(default=3, ge=0)
    """Times a failing call is tried again."""

    @field_validator("webhook_secret", "token")
    @classmethod
    def _real(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value, "a Jira secret")
