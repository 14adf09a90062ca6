"""Runners chosen by name: the map of known ones, and the factory that builds one from settings."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from orchestrator.base import AttemptContext, AttemptOutcome, Runner
from orchestrator.errors import RunnerNotConfigured
from sandbox.gitauth import Credentials


class NoRunner:
    """The runner when none is chosen: every attempt fails, saying how to choose one."""

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        raise RunnerNotConfigured(
            "no runner configured: set AUTAN_RUNNER to `agent` (the sandboxed agent), "
            "another runner's name, or an import path `module:attr`"
        )


def agent_runner(credentials: Credentials | None) -> Runner:
    """The sandboxed agent; imported here so that importing the orchestrator stays light."""
    from orchestrator.agent_runner import AgentRunner

    return AgentRunner(credentials=credentials)


RUNNERS: dict[str, Callable[[Credentials | None], Runner]] = {
    "none": lambda _credentials: NoRunner(),
    "agent": agent_runner,
}


def make_runner(name: str, *, credentials: Credentials | None = None) -> Runner:
    """Build the runner `name`: a key of RUNNERS (given the `credentials` to fetch
    repositories with) or an import path `module:attr` to a factory taking no arguments."""
    if name in RUNNERS:
        return RUNNERS[name](credentials)
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"unknown runner {name!r}: use one of {sorted(RUNNERS)} or an import path module:attr"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load runner {name!r}: {exc}") from exc
    runner: Runner = factory()
    return runner
