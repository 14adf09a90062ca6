"""Errors of the `autan` command: each says what went wrong and what to do.

CliError
 +-- SettingsInvalid
 +-- ApiUnreachable
 +-- ApiError
 |    +-- TokenRefused
 |    +-- NotFound
 |    +-- Conflict
 +-- SupervisorError
"""

from __future__ import annotations


class CliError(Exception):
    """Base of every error the command reports as one line and exit status 1."""


class SettingsInvalid(CliError):
    """Raised when an AUTAN_ environment variable holds a value the command cannot use."""


class ApiUnreachable(CliError):
    """Raised when the API cannot be reached, or stops answering mid-stream for good."""


class ApiError(CliError):
    """Raised when the API answers a request with an error status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class TokenRefused(ApiError):
    """Raised when the API refuses the token (401)."""


class NotFound(ApiError):
    """Raised when the API knows no task with the id asked for (404)."""


class Conflict(ApiError):
    """Raised when a request conflicts with the task's state: cancelling an ended task (409)."""


class SupervisorError(CliError):
    """Raised when `autan up` cannot start, or one of the processes it runs dies."""
