"""Errors of the integrations.

IntegrationError
 +-- NotConfigured          (a webhook answers 503)
 +-- SignatureInvalid       (401: missing, forged or stale signature)
 +-- MalformedRequest       (400: a missing header, a body that is not JSON or a form)
 +-- InvalidPayload         (422: well-formed, but not shaped as the service documents)
 +-- ServiceError           (a call to GitHub, Slack, Jira or Sentry failed)
 |    +-- QueueUnavailable  (503: Redis, which holds deliveries and the intake queue, failed)
 |    +-- ServiceRefused    (a 4xx other than 408/429: a report's side effect is not retried)
 |    +-- ServiceUnavailable (the network, 5xx, 408, 429: retried with back-off)
 +-- PublishError           (the branch could not be built or pushed)
"""

from __future__ import annotations

from orchestrator.errors import SideEffectRefused, SideEffectUnavailable


class IntegrationError(Exception):
    """Base of every error the integrations raise."""


class NotConfigured(IntegrationError):
    """Raised when a connector is used and its secret, token or mapping is not set."""


class SignatureInvalid(IntegrationError):
    """Raised when a webhook's signature is missing, does not match, or is too old."""


class MalformedRequest(IntegrationError):
    """Raised when a webhook lacks a required header or its body cannot be decoded."""


class InvalidPayload(IntegrationError):
    """Raised when a decoded webhook body lacks fields the service documents."""


class ServiceError(IntegrationError):
    """Raised when a call to an outside service fails; the message names the service."""


class QueueUnavailable(ServiceError):
    """Raised when Redis cannot record a delivery or queue its intake job; the webhook
    answers 503 so the sender delivers it again."""


class ServiceRefused(ServiceError, SideEffectRefused):
    """Raised when a service refuses a call for good (a 4xx other than 408 and 429, or a
    missing setting): asking again would be refused again."""


class ServiceUnavailable(ServiceError, SideEffectUnavailable):
    """Raised when a call to a service fails in a way that may pass (the network, a 5xx,
    408, 429); `retry_after` is the wait in seconds the service asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        SideEffectUnavailable.__init__(self, message, retry_after)


class PublishError(IntegrationError):
    """Raised when a task's diff cannot be applied, committed or pushed."""
