"""Errors of the control plane.

OrchestratorError
 +-- TaskNotFound
 +-- IdempotencyConflict
 +-- InvalidSubmission
 +-- LeaseLost
 +-- RunnerNotConfigured
 +-- StoreUnavailable
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises."""


class TaskNotFound(OrchestratorError):
    """Raised when a task id names no task in the store."""


class IdempotencyConflict(OrchestratorError):
    """Raised when an idempotency key is reused for a different request."""


class InvalidSubmission(OrchestratorError):
    """Raised when a task submission breaks a limit the settings set."""


class LeaseLost(OrchestratorError):
    """Raised when a worker no longer holds the attempt it is running (another took it over)."""


class RunnerNotConfigured(OrchestratorError):
    """Raised when an attempt is run and no runner is configured to do its work."""


class StoreUnavailable(OrchestratorError):
    """Raised when the database cannot be reached or migrated."""
