"""Plugins by origin kind, found through entry points: reporters and intake processors."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from orchestrator.base import IntakeProcessor

log = logging.getLogger(__name__)

INTAKES_GROUP = "autan.intakes"


def load_group(group: str, missing: str) -> dict[str, Any]:
    """Each entry point of `group` (name: an origin kind, value: a factory taking no
    arguments) called once; one that fails is logged with `missing` and left out."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=group):
        try:
            found[ep.name] = ep.load()()
        except Exception:
            log.exception("%s %s (%s) failed to load; %s", group, ep.name, ep.value, missing)
    return found


class Intakes:
    """A map of origin kind to the processor that finishes a webhook delivery in a worker.

    Integrations declare theirs in the `autan.intakes` group, so the worker runs
    the slow part of an intake (calls to the service, the submission) without
    importing an integration.
    """

    def __init__(self, processors: dict[str, IntakeProcessor] | None = None) -> None:
        self._processors: dict[str, IntakeProcessor] = dict(processors or {})

    @classmethod
    def from_entry_points(cls) -> Intakes:
        return cls(load_group(INTAKES_GROUP, "its deliveries wait in the intake queue"))

    def register(self, kind: str, processor: IntakeProcessor) -> None:
        self._processors[kind] = processor

    def get(self, kind: str) -> IntakeProcessor:
        """The processor of `kind`; LookupError (the job is retried) if none is installed."""
        try:
            return self._processors[kind]
        except KeyError:
            raise LookupError(
                f"no intake processor for {kind!r} (have {sorted(self._processors)}): "
                f"install the integration that declares it in {INTAKES_GROUP}"
            ) from None
