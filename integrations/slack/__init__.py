"""Slack: the `/autan` slash command in, thread replies out."""

from __future__ import annotations

from integrations.slack.config import SlackSettings
from integrations.slack.intake import SlackIntake
from integrations.slack.reporter import SlackReporter

__all__ = ["SlackIntake", "SlackReporter", "SlackSettings"]
