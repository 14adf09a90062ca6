"""Runners for the benchmarks: no work at all, so what is measured is the platform."""

from __future__ import annotations

from orchestrator.base import AttemptContext, AttemptOutcome


class NoopRunner:
    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        return AttemptOutcome(summary="nothing to do")
