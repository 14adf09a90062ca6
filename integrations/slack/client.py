"""The Slack Web API client from settings, or None when no bot token is set."""

from __future__ import annotations

from slack_sdk import WebClient

from integrations.config import secret
from integrations.slack.config import SlackSettings


def web_client(settings: SlackSettings) -> WebClient | None:
    if settings.bot_token is None:
        return None
    return WebClient(token=secret(settings.bot_token), base_url=settings.api_url, timeout=15)
