"""Pinning a task's commit in the store: the first attempt's commit is every attempt's."""

from __future__ import annotations

import threading

import pytest

from orchestrator.errors import LeaseLost
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState


def test_the_first_pin_wins_and_every_attempt_records_the_task_s_commit(
    services: Services,
) -> None:
    lifecycle = services.lifecycle
    task, _ = lifecycle.submit(TaskSpec(repo="/r", instruction="x", attempts=4))
    claims = []
    for attempt in task.attempts:
        claim = lifecycle.claims.claim(attempt.id, worker="w")
        assert claim is not None
        claims.append(claim)
    first = lifecycle.claims.pin_commit(claims[0], "a" * 40)
    assert first == "a" * 40
    # The others race to pin commits of their own: each is told the task's, and records it.
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda c=c, n=n: results.append(lifecycle.claims.pin_commit(c, str(n) * 40))
        )
        for n, c in enumerate(claims[1:], start=1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["a" * 40] * 3
    view = lifecycle.get(task.id)
    assert view.commit == "a" * 40 and [a.commit for a in view.attempts] == ["a" * 40] * 4

    # A run that no longer holds its attempt cannot write it.
    lifecycle.claims.finish(claims[1], AttemptState.FAILED, reason="done")
    with pytest.raises(LeaseLost):
        lifecycle.claims.pin_commit(claims[1], "b" * 40)
    assert lifecycle.get(task.id).commit == "a" * 40
