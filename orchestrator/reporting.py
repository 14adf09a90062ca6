"""Reporters by origin kind, and the ledger of a report's side effects they write to."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.base import Reporter
from orchestrator.errors import SideEffectRefused
from orchestrator.registry import load_group

ENTRY_POINT_GROUP = "autan.reporters"

Record = Callable[[str, str, str], None]
"""Stores one side effect's outcome: (name, `done` or `failed`, what it left or why)."""


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


class Steps:
    """The side effects of one task's report (comment, pull request, transition, ...).

    Each runs at most until it is done or refused for good; either outcome is recorded
    (in the store, by the report job), so a retry of the report does only what is left.
    Without `record` the outcomes are kept for this call only."""

    def __init__(
        self, known: dict[str, tuple[str, str]] | None = None, record: Record | None = None
    ) -> None:
        self._known = dict(known or {})
        self._record = record

    def run(self, name: str, effect: Callable[[], str]) -> str | None:
        """What `effect` left (say, a pull request's address), calling it only if it was not
        done before; None when it is refused, now or before. A refusal is recorded with
        the service's reason and the report goes on; other errors propagate."""
        if name in self._known:
            state, detail = self._known[name]
            return detail if state == "done" else None
        try:
            detail = effect()
        except SideEffectRefused as exc:
            self._set(name, "failed", str(exc))
            return None
        self._set(name, "done", detail)
        return detail

    def refusal(self, name: str) -> str | None:
        """Why the side effect `name` was refused; None if it was not."""
        state, detail = self._known.get(name, ("", ""))
        return detail if state == "failed" else None

    def failed(self) -> list[str]:
        return [name for name, (state, _) in self._known.items() if state == "failed"]

    def _set(self, name: str, state: str, detail: str) -> None:
        if self._record is not None:
            self._record(name, state, detail)
        self._known[name] = (state, detail)
