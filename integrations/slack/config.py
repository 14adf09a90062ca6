"""Settings of the Slack connector: signing secret, bot token, API base."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.config import refuse_placeholder


class SlackSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_SLACK_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_SLACK_", extra="ignore")

    signing_secret: SecretStr | None = None
    """The app's signing secret; unset, `POST /hooks/slack/commands` and `/hooks/slack/events`
    refuse every request."""

    bot_token: SecretStr | None = None
    """The bot token (`xoxb-...`, scope `chat:write`, `channels:history` for retries);
    unset, answers go through the command's `response_url` (valid for 30 minutes)."""

    api_url: str = "https://slack.com/api/"
    """Web API base."""

    max_age_s: int = Field(default=300, gt=0)
    """Oldest request timestamp accepted: Slack's five minutes against replays."""

    @field_validator("signing_secret", "bot_token")
    @classmethod
    def _real(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value, "a Slack secret")
