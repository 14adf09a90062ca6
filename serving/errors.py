"""Errors of model access: each says what went wrong and what to do.

ServingError
 +-- EndpointUnreachable
 |    +-- ModelTimeout
 +-- EndpointError
 |    +-- RateLimited
 |    +-- ServerFailed
 |    +-- RequestRejected
 +-- BadResponse
 +-- NoEndpointAvailable
 +-- ModelOutage
 +-- WaitStopped
 +-- VllmNotInstalled
 +-- ScriptInvalid
"""

from __future__ import annotations


class ServingError(Exception):
    """Base of every error the serving package raises."""


class EndpointUnreachable(ServingError):
    """Raised when an endpoint cannot be connected to, or drops the connection, after retries."""


class ModelTimeout(EndpointUnreachable):
    """Raised when an endpoint accepts a request but sends nothing within the read timeout."""


class EndpointError(ServingError):
    """Raised when an endpoint answers with an error status; `status` is the HTTP code."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(EndpointError):
    """Raised when an endpoint still answers 429 after every retry."""


class ServerFailed(EndpointError):
    """Raised when an endpoint still answers 5xx after every retry."""


class RequestRejected(EndpointError):
    """Raised when an endpoint refuses the request itself (4xx other than 429); not retried."""


class BadResponse(ServingError):
    """Raised when an endpoint answers 2xx with a body that is not a chat completion."""


class NoEndpointAvailable(ServingError):
    """Raised when every endpoint of the router is down or failed the request."""


class ModelOutage(ServingError):
    """Raised when no endpoint answered for longer than the caller's outage limit."""


class WaitStopped(ServingError):
    """Raised when the caller's stop signal ends a wait for the model to come back."""


class VllmNotInstalled(ServingError):
    """Raised when `autan model serve` runs where the `vllm` command is not installed."""


class ScriptInvalid(ServingError):
    """Raised when a scripted-model script cannot be read or does not follow the format."""
