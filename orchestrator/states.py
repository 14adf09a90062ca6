"""The states a task and its attempts move through, and which of them are final."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """Ended with a verified result: the tests fixed what failed on the base, broke nothing."""
    UNVERIFIED = "unverified"
    """Attempts finished but none verified (or no tests found); the best diff is kept."""
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATES


class AttemptState(StrEnum):
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    WAITING_MODEL = "waiting_model"
    """Paused while no model endpoint answers; resumes where it was."""
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_ATTEMPT_STATES


TERMINAL_TASK_STATES = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.UNVERIFIED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.TIMED_OUT,
    }
)
ACTIVE_TASK_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING})
TERMINAL_ATTEMPT_STATES = frozenset(
    {AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED, AttemptState.TIMED_OUT}
)
LIVE_ATTEMPT_STATES = frozenset(
    {
        AttemptState.PROVISIONING,
        AttemptState.RUNNING,
        AttemptState.WAITING_MODEL,
        AttemptState.VERIFYING,
    }
)
"""Attempts a worker holds: they carry a lease and a heartbeat."""
