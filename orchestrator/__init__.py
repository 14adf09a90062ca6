"""Control plane: store, queue (Celery on Redis), task lifecycle, events."""

from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome, Reporter, Runner
from orchestrator.config import OrchestratorSettings
from orchestrator.errors import (
    IdempotencyConflict,
    InvalidSubmission,
    OrchestratorError,
    TaskNotFound,
)
from orchestrator.lifecycle import Lifecycle
from orchestrator.schemas import EventView, OriginSpec, TaskSpec, TaskView
from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState

__all__ = [
    "AttemptContext",
    "AttemptFailed",
    "AttemptOutcome",
    "AttemptState",
    "EventView",
    "IdempotencyConflict",
    "InvalidSubmission",
    "Lifecycle",
    "OrchestratorError",
    "OrchestratorSettings",
    "OriginSpec",
    "Reporter",
    "Runner",
    "Services",
    "TaskNotFound",
    "TaskSpec",
    "TaskState",
    "TaskView",
]
