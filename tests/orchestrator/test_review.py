"""AUTAN_CHOOSE_REVIEW: the scripted model reviews the two best verified attempts and its pick
is kept, with the reason as an event; a failed review leaves the ranking's pick and says why.
SQLite and PostgreSQL both."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from orchestrator.agent_runner import AgentRunnerSettings, shared_router
from orchestrator.config import OrchestratorSettings
from orchestrator.models import Event, Task
from orchestrator.review import reviewed
from orchestrator.services import Services
from orchestrator.states import TaskState
from serving.script import Script
from serving.scripted import ScriptedServer, start_in_thread
from tests.orchestrator.test_choose import ended, kept, verdict

SMALL = "--- a/m.py\n+++ b/m.py\n-x = 1\n+x = 2\n"
BIG = SMALL + "+# handles the empty case as the instruction asks\n+y = 3\n"
TWO_VERIFIED = {
    1: {"diff": SMALL, "verified": True, "tests": verdict(fixed=1, verified=True)},
    2: {"diff": BIG, "verified": True, "tests": verdict(fixed=1, verified=True)},
}
"""The ranking keeps attempt 1 (the smaller diff); the model may prefer attempt 2."""


def model(monkeypatch: pytest.MonkeyPatch, reply: dict[str, Any]) -> Iterator[ScriptedServer]:
    server = start_in_thread(Script.model_validate({"fallback": reply}))
    monkeypatch.setenv("AUTAN_MODEL_URL", server.url)
    monkeypatch.setenv("AUTAN_MODEL_NAME", "scripted")
    yield server
    shared_router(AgentRunnerSettings()).close()  # the worker's router, made by the review
    server.stop()


@pytest.fixture
def picks_b(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    answer = {"choice": "B", "reason": "B also handles the empty case the instruction names."}
    yield from model(monkeypatch, {"content": json.dumps(answer)})


@pytest.fixture
def rambles(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    yield from model(monkeypatch, {"content": "Both look fine to me, I would go with B."})


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    answer = {"choice": "B", "reason": "too late"}
    yield from model(monkeypatch, {"content": json.dumps(answer), "delay_ms": 4000})


def reviewing(settings: OrchestratorSettings, **more: Any) -> Iterator[Services]:
    on = settings.model_copy(update={"choose_review": True, **more})
    services = Services(on)
    services.migrate()
    yield services
    services.close()


@pytest.fixture
def review_on(settings: OrchestratorSettings) -> Iterator[Services]:
    yield from reviewing(settings)


def events(services: Services, task_id: str, kind: str) -> list[dict[str, Any]]:
    with services.sessions() as session:
        query = select(Event.data).where(Event.task_id == task_id, Event.kind == kind)
        return list(session.scalars(query))


def test_the_models_pick_is_kept_with_its_reason(
    review_on: Services, picks_b: ScriptedServer
) -> None:
    task = ended(review_on, TWO_VERIFIED)

    assert task.state == TaskState.SUCCEEDED
    assert kept(task) == 2
    assert "kept attempt 2 of 2" in (task.reason or "")
    [review] = events(review_on, task.id, "task.review")
    assert review["by"] == "model"
    assert review["reason"] == "B also handles the empty case the instruction names."
    assert review["picked"]["attempt"] == 2
    assert [c["attempt"] for c in review["candidates"]] == [1, 2]
    # One question, showing the instruction and both diffs.
    [asked] = picks_b.requests
    question = asked["messages"][-1]["content"]
    assert "handles the empty case" in question and "-x = 1" in question
    assert "by_attempt" in question


def test_an_unreadable_answer_keeps_the_rankings_pick(
    review_on: Services, rambles: ScriptedServer
) -> None:
    task = ended(review_on, TWO_VERIFIED)

    assert task.state == TaskState.SUCCEEDED
    assert kept(task) == 1
    [review] = events(review_on, task.id, "task.review")
    assert review["by"] == "ranking"
    assert review["picked"]["attempt"] == 1
    assert "could not be read" in review["reason"]


def test_a_model_that_does_not_answer_in_time_keeps_the_rankings_pick(
    settings: OrchestratorSettings, slow: ScriptedServer
) -> None:
    for services in reviewing(settings, choose_review_timeout_s=0.5):
        task = ended(services, TWO_VERIFIED)
        assert task.state == TaskState.SUCCEEDED
        assert kept(task) == 1
        [review] = events(services, task.id, "task.review")
        assert review["by"] == "ranking"
        assert "did not answer within 0.5 s" in review["reason"]


def test_a_dead_model_keeps_the_rankings_pick(
    review_on: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTAN_MODEL_URL", "http://127.0.0.1:9/v1")
    task = ended(review_on, TWO_VERIFIED)

    assert task.state == TaskState.SUCCEEDED
    assert kept(task) == 1
    [review] = events(review_on, task.id, "task.review")
    assert review["by"] == "ranking" and "the model failed" in review["reason"]


def test_setting_off_asks_no_model(services: Services, picks_b: ScriptedServer) -> None:
    task = ended(services, TWO_VERIFIED)

    assert kept(task) == 1
    assert picks_b.requests == []
    assert events(services, task.id, "task.review") == []


def test_one_verified_attempt_asks_no_model(review_on: Services, picks_b: ScriptedServer) -> None:
    task = ended(
        review_on,
        {
            1: {"diff": SMALL, "verified": False, "tests": verdict()},
            2: {"diff": BIG, "verified": True, "tests": verdict(fixed=1, verified=True)},
        },
    )

    assert kept(task) == 2
    assert picks_b.requests == []
    assert events(review_on, task.id, "task.review") == []


def reopen(services: Services, task_id: str) -> None:
    """The task as if its end had failed after the review was recorded."""
    with services.sessions.begin() as session:
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(state=TaskState.RUNNING, result_id=None, finished_at=None)
        )


def test_a_retried_end_reuses_the_review(review_on: Services, picks_b: ScriptedServer) -> None:
    task = ended(review_on, TWO_VERIFIED)
    reopen(review_on, task.id)

    assert review_on.lifecycle.finalize(task.id)

    again = review_on.lifecycle.get(task.id)
    assert kept(again) == 2
    assert len(picks_b.requests) == 1
    assert len(events(review_on, task.id, "task.review")) == 1


def test_two_workers_ending_at_once_ask_once(review_on: Services, picks_b: ScriptedServer) -> None:
    task = ended(review_on, TWO_VERIFIED)
    with review_on.sessions.begin() as session:  # forget the review: as if never asked
        forgotten = Event.task_id == task.id, Event.kind.like("task.review%")
        session.execute(delete(Event).where(*forgotten))
    reopen(review_on, task.id)
    picks: list[int | None] = []

    def end() -> None:
        picks.append(reviewed(review_on.lifecycle, task.id))

    threads = [threading.Thread(target=end) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(picks) == 2 and len(set(picks)) == 1 and picks[0] is not None
    assert len(picks_b.requests) == 2  # the first ending, and one of these two
    assert len(events(review_on, task.id, "task.review")) == 1


def test_a_review_the_store_could_not_record_is_recorded_on_the_retry(
    review_on: Services, picks_b: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = review_on.lifecycle
    real = lifecycle.event
    refused: list[str] = []

    def store_down_once(session: Any, events: Any, task_id: str, kind: str, *a: Any) -> None:
        if kind == "task.review" and not refused:
            refused.append(task_id)
            raise OperationalError("INSERT", {}, Exception("the store went away"))
        real(session, events, task_id, kind, *a)

    monkeypatch.setattr(lifecycle, "event", store_down_once)
    task = ended(review_on, TWO_VERIFIED)  # the executor retries the task's end

    assert refused == [task.id]
    assert kept(task) == 2
    assert len(picks_b.requests) == 1
    [review] = events(review_on, task.id, "task.review")
    assert review["by"] == "model"
