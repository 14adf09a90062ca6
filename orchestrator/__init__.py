"""Control plane: store, queue (Celery on Redis), task lifecycle, events."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome, Reporter, Runner
    from orchestrator.config import OrchestratorSettings
    from orchestrator.errors import (
        IdempotencyConflict,
        InvalidSubmission,
        OrchestratorError,
        SideEffectRefused,
        SideEffectUnavailable,
        TaskNotFound,
    )
    from orchestrator.lifecycle import Lifecycle
    from orchestrator.reporting import Steps
    from orchestrator.schemas import EventView, OriginSpec, TaskSpec, TaskSummary, TaskView
    from orchestrator.services import Services
    from orchestrator.states import AttemptState, TaskState

# Imported on first use: the CLI needs the schemas, not Celery, Alembic and SQLAlchemy.
_HOMES = {
    "AttemptContext": "base",
    "AttemptFailed": "base",
    "AttemptOutcome": "base",
    "Reporter": "base",
    "Runner": "base",
    "OrchestratorSettings": "config",
    "IdempotencyConflict": "errors",
    "InvalidSubmission": "errors",
    "OrchestratorError": "errors",
    "SideEffectRefused": "errors",
    "SideEffectUnavailable": "errors",
    "TaskNotFound": "errors",
    "Lifecycle": "lifecycle",
    "Steps": "reporting",
    "EventView": "schemas",
    "OriginSpec": "schemas",
    "TaskSpec": "schemas",
    "TaskSummary": "schemas",
    "TaskView": "schemas",
    "Services": "services",
    "AttemptState": "states",
    "TaskState": "states",
}

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
    "SideEffectRefused",
    "SideEffectUnavailable",
    "Steps",
    "TaskNotFound",
    "TaskSpec",
    "TaskState",
    "TaskSummary",
    "TaskView",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(f"orchestrator.{_HOMES[name]}"), name)
