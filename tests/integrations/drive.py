"""Playing a worker's part: run the queued intake jobs, claim a task's attempt and finish it."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from orchestrator.base import AttemptOutcome
from orchestrator.queue import INTAKE
from orchestrator.registry import Intakes
from orchestrator.schemas import TaskView
from orchestrator.services import Services
from orchestrator.states import AttemptState
from orchestrator.worker import register_jobs

if TYPE_CHECKING:
    from tests.integrations.conftest import Wired


def queued(services: Services) -> list[tuple[str, dict[str, Any]]]:
    """The intake jobs waiting in Redis, oldest first, as (origin kind, payload); left there."""
    found = []
    for raw in reversed(services.redis.lrange(services.queue.intake_queue, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == INTAKE
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        found.append((args[0], args[1]))
    return found


def drain(w: Wired) -> int:
    """Take each intake job off Redis and run it as a worker does: the registered Celery job,
    with the processors built over the test's settings."""
    w.services.intakes = Intakes(w.hub.processors())
    app = w.services.celery
    job = (app if INTAKE in app.tasks else register_jobs(w.services)).tasks[INTAKE]
    done = 0
    while (raw := w.services.redis.rpop(w.services.queue.intake_queue)) is not None:
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        job.apply(args=args, kwargs=kwargs, throw=True)
        done += 1
    return done


COMMIT = "c0ffee" + "0123456789" * 3 + "abcd"
"""The commit finished tasks say they were tested on."""


def finish(
    services: Services,
    task_id: str,
    diff: str,
    summary: str = "Fixed add().",
    tests_outcome: str = "3 passed",
    verified: bool = True,
) -> TaskView:
    task = services.lifecycle.get(task_id)
    claim = services.lifecycle.claims.claim(task.attempts[0].id, worker="test")
    assert claim is not None
    services.lifecycle.claims.pin_commit(claim, COMMIT)
    outcome = AttemptOutcome(
        summary=summary, diff=diff, verified=verified, tests_outcome=tests_outcome, cost_usd=0.42
    )
    services.lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)
    return services.lifecycle.get(task_id)


def tasks(services: Services) -> list[TaskView]:
    from orchestrator.task_lists import list_tasks

    with services.sessions() as session:
        found = list_tasks(session, limit=100).items
        return [services.lifecycle.get(t.id) for t in found]
