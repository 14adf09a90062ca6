"""run, status, logs and cancel against the live API, with real workers doing the attempts."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.schemas import TaskView
from orchestrator.services import Services
from orchestrator.states import TaskState
from tests.cli.conftest import Autan, task_id_in
from tests.waiting import wait_until
from tests.workers import WorkerPool


def ended(services: Services, task_id: str) -> TaskView:
    def done() -> TaskView | None:
        task = services.lifecycle.get(task_id)
        return task if task.state.terminal else None

    return wait_until(done, timeout=60, what=f"task {task_id} to end")


def test_run_then_status_then_logs(
    autan: Autan, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start()
    repo = tmp_path / "repo"
    repo.mkdir()
    script = json.dumps({"steps": 3, "summary": "did the thing"})
    relative = str(Path("..") / repo.name)
    submitted = autan.process(
        "run", script, "--repo", relative, "--idempotency-key", "k-1", cwd=repo
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = task_id_in(submitted.stdout)
    assert f"task {task_id} queued" in submitted.stdout
    assert f"autan logs -f {task_id}" in submitted.stdout

    task = ended(services, task_id)
    assert task.state == TaskState.SUCCEEDED, workers.output()
    assert task.repo == str(repo)  # the relative path went out absolute
    assert task.origin.kind == "cli"
    assert task.idempotency_key == "k-1"

    again = autan("run", script, "--repo", str(repo), "--idempotency-key", "k-1")
    assert again.returncode == 0, again.stderr
    assert f"task {task_id} succeeded (already submitted with this idempotency key)" in again.stdout

    listed = autan("status")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if task_id in line)
    assert "succeeded" in row and str(repo) in row and "kept attempt 1 of 1" in row

    page = json.loads(autan("status", "--json", "--state", "succeeded").stdout)
    assert [t["id"] for t in page["items"]] == [task_id]
    assert page["next_cursor"] is None
    assert json.loads(autan("status", "--json", "--state", "failed").stdout)["items"] == []

    shown = autan("status", task_id)
    assert shown.returncode == 0, shown.stderr
    assert "attempts" in shown.stdout and "result: did the thing" in shown.stdout
    assert "kept attempt 1 of 1" in shown.stdout
    detail = json.loads(autan("status", task_id, "--json").stdout)
    assert detail["id"] == task_id and detail["state"] == "succeeded"
    assert detail["origin"]["kind"] == "cli"
    assert [(a["number"], a["state"], a["runs"]) for a in detail["attempts"]] == [
        (1, "succeeded", 1)
    ]
    assert detail["result"]["summary"] == "did the thing"

    logs = autan("logs", task_id)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    messages = [line.split(" #1 model.message ")[1] for line in lines if "model.message" in line]
    assert messages == ['text="step 1"', 'text="step 2"', 'text="step 3"']
    assert any("task.finished state=succeeded reason=" in line for line in lines)
    events = [json.loads(line) for line in autan("logs", task_id, "--json").stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["kind"] for e in events][:2] == ["task.created", "attempt.state"]
    assert "task.finished" in [e["kind"] for e in events]

    late = autan("cancel", task_id)
    assert late.returncode == 1
    assert late.stderr == (
        f"error: task {task_id} already ended: succeeded; there is nothing to cancel\n"
    )


def test_run_follow_exits_0_on_success_and_1_on_failure(
    autan: Autan, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start(concurrency=2)
    good = autan("run", json.dumps({"steps": 2}), "--repo", str(tmp_path), "--follow")
    assert good.returncode == 0, good.stderr + workers.output()
    task_id = task_id_in(good.stdout)
    lines = good.stdout.splitlines()
    assert sum('model.message text="step' in line for line in lines) == 2
    assert f"task {task_id} succeeded: kept attempt 1 of 1" in lines
    assert lines[-1] == "result: attempt 1 done"
    assert services.lifecycle.get(task_id).state == TaskState.SUCCEEDED

    script = json.dumps({"fail": "the tests stay red"})
    bad = autan("run", script, "--repo", str(tmp_path), "--attempts", "2", "-f")
    assert bad.returncode == 1, bad.stderr + workers.output()
    task_id = task_id_in(bad.stdout)
    reason = "attempt 1: the tests stay red; attempt 2: the tests stay red"
    assert bad.stdout.splitlines()[-1] == f"task {task_id} failed: {reason}"
    assert "#1 attempt.state state=failed" in bad.stdout
    assert "#2 attempt.state state=failed" in bad.stdout
    assert bad.stderr == ""
    assert services.lifecycle.get(task_id).state == TaskState.FAILED


def test_run_follow_exits_1_when_the_result_is_unverified_and_status_says_so(
    autan: Autan, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start()
    outcome = "unverified: 0 fixed, 1 still passing, 0 broken, 0 vanished (pytest)"
    script = json.dumps({"verified": False, "diff": "+x\n", "tests_outcome": outcome})
    done = autan("run", script, "--repo", str(tmp_path), "-f")
    assert done.returncode == 1, done.stderr + workers.output()
    task_id = task_id_in(done.stdout)
    lines = done.stdout.splitlines()
    assert (
        f"task {task_id} unverified: no attempt verified; kept attempt 1 of 1: {outcome}" in lines
    )
    assert lines[-1] == f"the kept diff is unverified; `autan diff {task_id}` prints it"
    assert services.lifecycle.get(task_id).state == TaskState.UNVERIFIED

    shown = autan("status", task_id, "--json")
    detail = json.loads(shown.stdout)
    assert detail["state"] == "unverified"
    assert [(a["state"], a["verdict"]) for a in detail["attempts"]] == [("succeeded", "unverified")]
    table = autan("status", task_id).stdout
    assert "verified" in table  # the column
    row = next(line for line in table.splitlines() if line.strip().startswith("1 "))
    assert "succeeded" in row and "unverified" in row
    assert "verified: no, unverified" in table


def test_cancel_stops_a_running_task(
    autan: Autan, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start()
    script = json.dumps({"wait_for": str(tmp_path / "never")})
    task_id = task_id_in(autan("run", script, "--repo", str(tmp_path)).stdout)
    wait_until(
        lambda: services.lifecycle.get(task_id).attempts[0].state == "running",
        what="the attempt to run",
    )

    cancelled = autan("cancel", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"task {task_id} cancelled: cancelled by token admin\n"
    task = wait_until(
        lambda: (t := services.lifecycle.get(task_id)).attempts[0].state == "cancelled" and t,
        what="the attempt to stop",
    )
    assert task.state == TaskState.CANCELLED
    assert task.attempts[0].reason == "the task was cancelled"

    followed = autan("logs", "-f", task_id)
    assert followed.returncode == 0, followed.stderr
    assert "task.finished state=cancelled" in followed.stdout
    shown = autan("status", task_id)
    assert "cancelled by token admin" in shown.stdout
