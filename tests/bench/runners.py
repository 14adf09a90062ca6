"""Runners for the benchmarks: no work at all, so what is measured is the platform."""

from __future__ import annotations

import os

from orchestrator.base import AttemptContext, AttemptOutcome


class NoopRunner:
    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        return AttemptOutcome(summary="nothing to do")


class CountingRunner:
    """Appends the attempt id to BENCH_DRAIN_RECORD, so a drain can prove each ran once."""

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        with open(os.environ["BENCH_DRAIN_RECORD"], "a") as f:
            f.write(f"{ctx.attempt_id}\n")
        return AttemptOutcome(summary="counted")
