"""Errors of the agent, and the outcomes that end a run (they carry what to record).

AgentError
 +-- RunEnded
 |    +-- Finished
 |    +-- BudgetExceeded
 |    +-- Cancelled
 +-- ToolFailed
 +-- ModelFailed
 +-- RepoConfigInvalid
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent package raises."""


class RunEnded(AgentError):
    """Raised when a run ends; `reason` is one word for the record, the message says more."""

    reason = "ended"


class Finished(RunEnded):
    """Raised when the model calls `finish`; carries its summary."""

    reason = "finished"

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class BudgetExceeded(RunEnded):
    """Raised when a budget (steps, tokens, cost, wall time) is spent; `budget` names which."""

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget
        self.reason = f"budget:{budget}"


class Cancelled(RunEnded):
    """Raised when the attempt's stop signal is set, between steps or during a command."""

    reason = "cancelled"


class ToolFailed(AgentError):
    """Raised when a tool cannot do what it was asked; its message goes back to the model."""


class ModelFailed(AgentError):
    """Raised when the model endpoint fails for good (after the client's retries)."""


class RepoConfigInvalid(AgentError):
    """Raised when a repository's `.autan.toml` cannot be read; says which key is wrong."""
