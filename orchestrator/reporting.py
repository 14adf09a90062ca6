"""Reporters by origin kind: integrations register them; the lifecycle calls them at the end."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from orchestrator.base import Reporter

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "autan.reporters"


class Reporters:
    """A map of origin kind to reporter.

    Integrations declare theirs as entry points in the `autan.reporters` group
    (name: the origin kind, value: a factory taking no arguments), so the
    orchestrator never imports an integration. Kinds with no reporter (cli, web,
    api) are answered by the dashboard and the CLI themselves.
    """

    def __init__(self, reporters: dict[str, Reporter] | None = None) -> None:
        self._reporters: dict[str, Reporter] = dict(reporters or {})

    @classmethod
    def from_entry_points(cls) -> Reporters:
        found: dict[str, Reporter] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                found[ep.name] = ep.load()()
            except Exception:
                log.exception(
                    "reporter %s (%s) failed to load; its tasks go unreported", ep.name, ep.value
                )
        return cls(found)

    def register(self, kind: str, reporter: Reporter) -> None:
        self._reporters[kind] = reporter

    def get(self, kind: str) -> Reporter | None:
        return self._reporters.get(kind)
