"""Plugins by origin kind: intake processors and reporters found through entry points."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.lifecycle import Lifecycle
from orchestrator.registry import Intakes
from orchestrator.reporting import Reporters


class Recorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def process(self, payload: dict[str, Any], lifecycle: Lifecycle) -> None:
        self.seen.append(payload)


def test_installed_integrations_declare_intake_processors_and_reporters() -> None:
    intakes = Intakes.from_entry_points()
    for kind in ("github", "slack", "jira", "sentry"):
        assert hasattr(intakes.get(kind), "process")
    reporters = Reporters.from_entry_points()
    assert all(reporters.get(k) is not None for k in ("github", "slack", "jira", "sentry"))


def test_an_unknown_kind_names_the_installed_ones() -> None:
    intakes = Intakes({"github": Recorder()})
    intakes.register("slack", Recorder())
    with pytest.raises(
        LookupError, match=r"no intake processor for 'jira' \(have \['github', 'slack'\]\)"
    ):
        intakes.get("jira")
