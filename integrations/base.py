"""The integrations' seam: an intake turns a verified webhook into an answer and, maybe, a task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Outcome = Literal["accepted", "ignored", "duplicate", "answered"]


@dataclass(frozen=True)
class Answer:
    """What a webhook answers at once; work left after answering is queued for a worker."""

    outcome: Outcome
    reason: str
    task_id: str | None = None
    body: dict[str, Any] | None = None
    """A body to answer with instead of the default one (Slack shows it to the user)."""

    def json(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        return {"status": self.outcome, "reason": self.reason, "task_id": self.task_id}


class Intake(Protocol):
    def receive(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Verify, then parse; raise an IntegrationError for input to refuse."""
        ...
