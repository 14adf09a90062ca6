"""Sentry: new issues and alerts in, a comment out."""

from __future__ import annotations

from integrations.sentry.config import SentrySettings
from integrations.sentry.intake import SentryIntake
from integrations.sentry.reporter import SentryReporter

__all__ = ["SentryIntake", "SentryReporter", "SentrySettings"]
