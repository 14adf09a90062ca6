"""Reporters by origin kind: integrations register them; the lifecycle calls them at the end."""

from __future__ import annotations

from orchestrator.base import Reporter
from orchestrator.registry import load_group

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
        return cls(load_group(ENTRY_POINT_GROUP, "its tasks go unreported"))

    def register(self, kind: str, reporter: Reporter) -> None:
        self._reporters[kind] = reporter

    def get(self, kind: str) -> Reporter | None:
        return self._reporters.get(kind)
