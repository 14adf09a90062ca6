"""GitHub, Slack, Jira and Sentry: intake (verify, parse, submit) and report-back."""

from __future__ import annotations

from integrations.base import Answer, Intake
from integrations.config import IntegrationSettings, RepoConfig, Routing
from integrations.errors import (
    IntegrationError,
    InvalidPayload,
    MalformedRequest,
    NotConfigured,
    PublishError,
    ServiceError,
    ServiceRefused,
    ServiceUnavailable,
    SignatureInvalid,
)

__all__ = [
    "Answer",
    "Intake",
    "IntegrationError",
    "IntegrationSettings",
    "InvalidPayload",
    "MalformedRequest",
    "NotConfigured",
    "PublishError",
    "RepoConfig",
    "Routing",
    "ServiceError",
    "ServiceRefused",
    "ServiceUnavailable",
    "SignatureInvalid",
]
