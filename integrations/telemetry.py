"""Autan's own errors to Sentry (when `AUTAN_SENTRY_DSN` is set), with secrets scrubbed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.types import Event, Hint

from integrations.config import secret
from integrations.sentry.config import SentrySettings

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-slack-signature",
        "sentry-hook-signature",
        "proxy-authorization",
    }
)


class Scrubber:
    """A `before_send` that removes secret values wherever they appear, and auth headers."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short values would redact half of every event; real secrets are long.
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, event: Event, hint: Hint) -> Event:
        scrubbed: Event = self._walk(event)
        return scrubbed

    def _walk(self, value: Any, key: str = "") -> Any:
        if key.lower() in SECRET_HEADERS:
            return REDACTED
        if isinstance(value, dict):
            return {k: self._walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in SECRET_HEADERS:
                return [value[0], REDACTED]  # headers as [name, value] pairs
            return [self._walk(v) for v in value]
        if isinstance(value, str):
            for known in self.secrets:
                value = value.replace(known, REDACTED)
        return value


def init_sentry(settings: SentrySettings, secrets: Iterable[str] = ()) -> bool:
    """Start reporting this process's errors; False (and nothing started) without a DSN.

    `secrets`: every secret value this process knows (tokens, signing secrets) so that
    none reaches Sentry even inside a message or a local variable.
    """
    if settings.dsn is None:
        return False
    # Personal data stays out by the SDK's default (send_default_pii before 3.0, data_collection
    # after): not named here, so the call types on either.
    known = [*secrets, secret(settings.dsn), secret(settings.token), secret(settings.client_secret)]
    sentry_sdk.init(
        dsn=secret(settings.dsn),
        environment=settings.environment,
        before_send=Scrubber(known),
        integrations=[StarletteIntegration(), FastApiIntegration(), CeleryIntegration()],
    )
    return True


def init_sentry_from_env() -> bool:
    """`init_sentry` for an entry point: settings from the environment, and every secret
    the connectors hold (whichever are configured) given to the scrubber."""
    from integrations.github.config import GitHubSettings
    from integrations.jira.config import JiraSettings
    from integrations.slack.config import SlackSettings

    settings = SentrySettings()
    if settings.dsn is None:
        return False
    known: list[str] = []
    for kind in (GitHubSettings, JiraSettings, SlackSettings):
        try:
            values = kind().__dict__.values()
        except ValueError:
            continue  # that connector refuses its config; it holds no secret to leak
        known += [secret(v) for v in values if isinstance(v, SecretStr)]
    return init_sentry(settings, known)
