"""Settings of the Sentry connector and of Autan's own error reporting."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.config import refuse_placeholder


class SentrySettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_SENTRY_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_SENTRY_", extra="ignore")

    client_secret: SecretStr | None = None
    """The internal integration's client secret; unset, `POST /hooks/sentry` refuses all."""

    token: SecretStr | None = None
    """The integration's token (Issue & Event: read and write) for events and comments."""

    max_age_s: int = Field(default=300, gt=0)
    """How old (or how far ahead) a delivery's Sentry-Hook-Timestamp may be, in seconds."""

    api_url: str = "https://sentry.io"
    """Sentry's base URL (self-hosted: your Sentry's)."""

    dsn: SecretStr | None = None
    """Where Autan reports its own errors; unset, it reports none."""

    environment: str = "production"
    """The environment Autan's own errors are tagged with."""

    @field_validator("client_secret", "token", "dsn")
    @classmethod
    def _real(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value, "a Sentry secret")
