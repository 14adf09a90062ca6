"""`autan diff` and `autan apply` against the live API, with real workers and real checkouts;
the commit and the cost of every attempt in `autan status` and the API."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.services import Services
from orchestrator.states import AttemptState, TaskState
from tests.cli.conftest import Autan, task_id_in
from tests.cli.test_tasks import ended
from tests.workers import WorkerPool

LIB = "def add(a, b):\n    return a - b\n\n\ndef version():\n    return '1.0'\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def make_repo(root: Path) -> tuple[Path, str]:
    repo = root / "repo"
    repo.mkdir()
    (repo / "lib.py").write_text(LIB)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def diff_of(repo: Path, old: str, new: str) -> str:
    """The diff git makes of one edit, then the edit undone."""
    (repo / "lib.py").write_text(LIB.replace(old, new))
    made = git(repo, "diff")
    git(repo, "checkout", "--", "lib.py")
    return made


def clone(repo: Path, where: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(where))
    return where


def test_diff_prints_an_attempt_s_diff_and_apply_applies_it_with_3way(
    autan: Autan, services: Services, workers: WorkerPool, api: TestClient, tmp_path: Path
) -> None:
    workers.start()
    repo, sha = make_repo(tmp_path)
    fix, half = diff_of(repo, "a - b", "a + b"), diff_of(repo, "a - b", "a * b")
    budget = "step budget of 3 model calls spent (budget:steps)"
    script = {
        "commit": sha, "diff": fix, "cost": 0.25, "tokens": 100,
        "by_attempt": {"2": {"fail": budget, "partial": True, "diff": half, "cost": 0.5}},
    }  # fmt: skip
    submitted = autan("run", json.dumps(script), "--repo", str(repo), "--attempts", "2")
    assert submitted.returncode == 0, submitted.stderr
    task = ended(services, task_id_in(submitted.stdout))
    assert task.state == TaskState.SUCCEEDED, workers.output()
    assert [a.state for a in task.attempts] == [AttemptState.SUCCEEDED, AttemptState.FAILED]

    # The API: the commit on the task and each attempt, the cost summed over both.
    body = api.get(f"/api/tasks/{task.id}").json()
    assert body["commit"] == sha and [a["commit"] for a in body["attempts"]] == [sha, sha]
    assert body["cost_usd"] == 0.75
    assert [a["result"]["partial"] for a in body["attempts"]] == [False, True]
    assert [a["result"]["cost_usd"] for a in body["attempts"]] == [0.25, 0.5]
    assert body["attempts"][1]["result"]["diff"] == half
    raw = api.get(f"/api/tasks/{task.id}/diff", params={"attempt": 2})
    assert raw.status_code == 200 and raw.text == half
    assert raw.headers["content-type"].startswith("text/x-diff")
    assert (raw.headers["x-autan-attempt"], raw.headers["x-autan-partial"]) == ("2", "true")
    assert raw.headers["x-autan-commit"] == sha

    kept = autan("diff", task.id)
    assert (kept.returncode, kept.stdout) == (0, fix)
    assert f"attempt 1 of task {task.id} on commit {sha[:12]}" in kept.stderr
    second = autan("diff", task.id, "--attempt", "2")
    assert (second.returncode, second.stdout) == (0, half)
    assert "partial" in second.stderr

    shown = autan("status", task.id)
    assert shown.returncode == 0, shown.stderr
    assert sha in shown.stdout and "$0.7500 (all attempts)" in shown.stdout
    assert "$0.2500" in shown.stdout and "$0.5000" in shown.stdout
    assert "(partial)" in shown.stdout and sha[:12] in shown.stdout
    row = next(line for line in autan("status").stdout.splitlines() if task.id in line)
    assert sha[:12] in row and "$0.75" in row

    # apply: into a clone given by path, and into the current directory by default.
    first = clone(repo, tmp_path / "first")
    applied = autan("apply", task.id, str(first))
    assert applied.returncode == 0, applied.stderr
    assert f"applied the diff of attempt 1 of task {task.id}" in applied.stdout
    assert (first / "lib.py").read_text() == LIB.replace("a - b", "a + b")
    here = clone(repo, tmp_path / "here")
    (here / "sub").mkdir()
    by_default = autan.process("apply", task.id, "--attempt", "2", cwd=here / "sub")
    assert by_default.returncode == 0, by_default.stderr
    assert (here / "lib.py").read_text() == LIB.replace("a - b", "a * b")

    # A checkout that changed the same line: a 3-way merge with the conflict marked.
    moved = clone(repo, tmp_path / "moved")
    (moved / "lib.py").write_text(LIB.replace("a - b", "a / b"))
    git(moved, "commit", "-qam", "divide")
    conflict = autan("apply", task.id, str(moved))
    assert conflict.returncode == 1
    assert "with conflicts in lib.py" in conflict.stderr and "git add" in conflict.stderr
    text = (moved / "lib.py").read_text()
    assert "<<<<<<<" in text and "a / b" in text and "a + b" in text
    # A checkout of something else altogether: the diff does not apply, and it says so.
    other = tmp_path / "other"
    other.mkdir()
    (other / "lib.py").write_text("nothing alike\n")
    git(other, "init", "-q")
    refused = autan("apply", task.id, str(other))
    assert refused.returncode == 1 and "does not apply to" in refused.stderr
    assert (other / "lib.py").read_text() == "nothing alike\n"


def test_diff_and_apply_say_why_when_there_is_nothing_to_apply(
    autan: Autan, services: Services, workers: WorkerPool, tmp_path: Path
) -> None:
    workers.start()
    repo, _ = make_repo(tmp_path)
    empty = task_id_in(autan("run", json.dumps({"diff": ""}), "--repo", str(repo)).stdout)
    failed = task_id_in(autan("run", json.dumps({"fail": "no"}), "--repo", str(repo)).stdout)
    ended(services, empty), ended(services, failed)

    said = autan("diff", empty)
    assert said.returncode == 1 and said.stdout == ""
    assert f"attempt 1 of task {empty} left an empty diff" in said.stderr
    said = autan("diff", failed)
    assert said.returncode == 1 and f"no attempt of task {failed} left a diff" in said.stderr
    said = autan("diff", failed, "--attempt", "3")
    assert said.returncode == 1 and f"task {failed} has no attempt 3" in said.stderr
    said = autan("diff", "0" * 32)
    assert said.returncode == 1 and "no task with id" in said.stderr
    said = autan("apply", failed, str(clone(repo, tmp_path / "c")))
    assert said.returncode == 1 and "left a diff" in said.stderr

    not_git = tmp_path / "plain"
    not_git.mkdir()
    said = autan("apply", empty, str(not_git))
    assert said.returncode == 1 and "is not a git checkout" in said.stderr
    said = autan("apply", empty, str(tmp_path / "absent"))
    assert said.returncode == 1 and "is not a directory" in said.stderr
