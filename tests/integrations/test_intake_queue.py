"""The slow half of an intake is a durable job: the API may die after answering, Redis may fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.processes import spawn
from integrations.config import RepoConfig
from orchestrator.config import OrchestratorSettings
from orchestrator.errors import InvalidSubmission
from orchestrator.queue import AttemptQueue, make_celery
from tests.integrations import signing
from tests.integrations.conftest import TOKEN, Wired
from tests.integrations.drive import drain, queued, tasks
from tests.integrations.fake_github import Issue
from tests.integrations.test_github import labeled
from tests.integrations.test_jira import issue_event
from tests.integrations.test_jira import post as jira_post
from tests.integrations.test_slack import command
from tests.integrations.test_slack import post as slack_post
from tests.services import RedisServer
from tests.waiting import wait_until
from tests.workers import WorkerPool, settings_env


def start_worker(pool: WorkerPool, w: Wired, remote: Path) -> None:
    """A real worker, started as `autan worker` is, that finds the processors by their
    entry points and reads their settings from the environment and autan.toml."""
    data_dir = pool.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "autan.toml").write_text(
        f'[repos.app]\nurl = "{remote}"\ngithub = "acme/app"\n\n[jira.projects]\nAPP = "app"\n'
    )
    env = settings_env(pool.settings) | {
        "AUTAN_GITHUB_TOKEN": TOKEN,
        "AUTAN_GITHUB_API_URL": w.github.url,
        "AUTAN_GITHUB_REQUEST_INTERVAL_S": "0",
        "AUTAN_GITHUB_RETRIES": "0",
    }
    log = pool.logs / f"worker-{len(pool.processes)}.log"
    pool.processes.append(
        spawn("worker", [sys.executable, "-m", "orchestrator"], log, env=env).process
    )


def test_a_delivery_answered_by_an_api_that_then_dies_is_done_by_a_worker_started_later(
    wired: Wired, workers: WorkerPool, remote: Path
) -> None:
    w = wired
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "2 + 2 gives 0", [])
    body, headers = signing.github("issues", labeled(), delivery="d-crash")
    r = w.api.post("/hooks/github", content=body, headers=headers)
    assert (r.status_code, r.json()["status"]) == (200, "accepted")
    w.api.close()  # the API goes away having answered: it holds nothing of the delivery
    del w.api.app.state.hooks  # type: ignore[attr-defined]
    assert tasks(w.services) == [] and w.github.requests == []
    assert [kind for kind, _ in queued(w.services)] == ["github"]

    start_worker(workers, w, remote)
    [task] = wait_until(lambda: tasks(w.services), timeout=60, what="the worker to make the task")
    assert task.idempotency_key == "github:d-crash" and task.origin.external_id == "acme/app#7"
    assert task.instruction.startswith("# add() subtracts\n\n2 + 2 gives 0")
    assert w.github.lines() == [
        "GET /repos/acme/app",
        "GET /repos/acme/app/collaborators/octocat/permission",
        "GET /repos/acme/app/issues/7",
        "GET /repos/acme/app/issues/7/comments",
    ]
    assert w.github.requests[0].headers["authorization"] == f"token {TOKEN}"
    wait_until(lambda: queued(w.services) == [], what="the job to be acknowledged")


def test_a_jira_delivery_is_answered_at_once_and_its_task_made_by_a_real_worker(
    wired: Wired, workers: WorkerPool, remote: Path
) -> None:
    w = wired
    r = jira_post(w, issue_event(), delivery="j-worker", work=False)
    assert (r.status_code, r.json()["status"], r.json()["task_id"]) == (200, "accepted", None)
    assert tasks(w.services) == [] and [kind for kind, _ in queued(w.services)] == ["jira"]

    start_worker(workers, w, remote)
    [task] = wait_until(lambda: tasks(w.services), timeout=60, what="the worker to make the task")
    assert task.idempotency_key == "jira:j-worker" and task.origin.external_id == "APP-7"
    assert task.instruction == "# APP-7: add() subtracts\n\n2 + 2 gives 0"
    wait_until(lambda: queued(w.services) == [], what="the job to be acknowledged")
    again = jira_post(w, issue_event(), delivery="j-worker", work=False)
    assert again.json()["status"] == "duplicate" and queued(w.services) == []
    assert [t.id for t in tasks(w.services)] == [task.id] and w.jira.requests == []


def test_with_redis_down_a_delivery_gets_503_and_its_redelivery_is_accepted(
    wired: Wired, redis_server: RedisServer
) -> None:
    w = wired
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "", [])
    body, headers = signing.github("issues", labeled(), delivery="d-down")
    redis_server.stop()
    try:
        r = w.api.post("/hooks/github", content=body, headers=headers)
    finally:
        redis_server.start()
    assert r.status_code == 503
    assert "Redis, which remembers webhook deliveries, failed" in r.json()["detail"]
    assert tasks(w.services) == []

    again = w.api.post("/hooks/github", content=body, headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "accepted")
    assert drain(w) == 1
    [task] = tasks(w.services)
    assert task.idempotency_key == "github:d-down"


def test_when_only_the_queue_fails_the_delivery_is_not_left_marked_as_seen(
    wired: Wired, settings: OrchestratorSettings
) -> None:
    w = wired
    w.github.permissions["octocat"] = "write"
    w.github.issues[7] = Issue("add() subtracts", "", [])
    lifecycle = w.hub.github.submitter.lifecycle
    working = lifecycle.queue
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    lifecycle.queue = AttemptQueue(make_celery(dead), w.services.redis, settings.queue_name)
    body, headers = signing.github("issues", labeled(), delivery="d-queue")
    try:
        r = w.api.post("/hooks/github", content=body, headers=headers)
    finally:
        lifecycle.queue = working
    assert r.status_code == 503
    assert "Redis, which queues webhook deliveries for the workers, failed" in r.json()["detail"]
    assert w.services.redis.exists("autan:delivery:github:d-queue") == 0
    assert queued(w.services) == [] and tasks(w.services) == []

    again = w.api.post("/hooks/github", content=body, headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "accepted")
    assert drain(w) == 1 and len(tasks(w.services)) == 1


def test_a_job_that_can_never_be_a_task_fails_once_and_posts_nothing_twice(wired: Wired) -> None:
    """autan.toml names a repository URL the orchestrator refuses: the intakes accept (they
    cannot know), and each worker job is refused for good, not retried."""
    w = wired
    w.routing.repos["app"] = RepoConfig(url="ext::sh -c true", github="acme/app")
    assert jira_post(w, issue_event(), delivery="j-bad", work=False).json()["status"] == (
        "accepted"
    )
    assert slack_post(w, command(w, "app fix the sum"), work=False).status_code == 200
    assert [kind for kind, _ in queued(w.services)] == ["jira", "slack"]
    for _ in range(2):  # neither raises Celery's Retry: the refusal is the job's end
        with pytest.raises(InvalidSubmission, match="repository URL not allowed"):
            drain(w)
    assert queued(w.services) == [] and tasks(w.services) == []
    assert w.jira.requests == []
    assert [m["text"] for m in w.slack.messages] == ["<@U1> asked on `app`: fix the sum"]
