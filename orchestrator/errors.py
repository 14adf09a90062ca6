"""Errors of the control plane.

OrchestratorError
 +-- TaskNotFound
 +-- IdempotencyConflict
 +-- TaskEnded
 +-- TaskNotEnded
 +-- InvalidSubmission
 +-- LeaseLost
 +-- RunnerNotConfigured
 +-- StoreUnavailable
 +-- SideEffectFailed
      +-- SideEffectRefused      (a report's side effect refused for good: not retried)
      +-- SideEffectUnavailable  (may pass: retried with back-off until the deadline)
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises."""


class TaskNotFound(OrchestratorError):
    """Raised when a task id names no task in the store."""


class IdempotencyConflict(OrchestratorError):
    """Raised when an idempotency key is reused for a different request."""


class TaskEnded(OrchestratorError):
    """Raised when something is asked of a task (or attempt) that has already ended."""


class TaskNotEnded(OrchestratorError):
    """Raised when something is asked of a task that only an ended one allows (continue)."""


class InvalidSubmission(OrchestratorError):
    """Raised when a task submission breaks a limit the settings set."""


class LeaseLost(OrchestratorError):
    """Raised when a worker no longer holds the attempt it is running (another took it over)."""


class RunnerNotConfigured(OrchestratorError):
    """Raised when an attempt is run and no runner is configured to do its work."""


class StoreUnavailable(OrchestratorError):
    """Raised when the database cannot be reached or migrated."""


class SideEffectFailed(OrchestratorError):
    """Raised when a side effect of a report (a comment, a push, a transition) fails."""


class SideEffectRefused(SideEffectFailed):
    """Raised when a service refuses a report's side effect for good (a 4xx other than
    408 and 429, a validation error): asking again would be refused again."""


class SideEffectUnavailable(SideEffectFailed):
    """Raised when a report's side effect failed in a way that may pass (the network, a
    5xx, a 408 or 429); `retry_after` is the wait in seconds the service asked for."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
