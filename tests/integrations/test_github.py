"""GitHub: signed deliveries become tasks; results come back as a branch, a pull request, a comment."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from integrations.errors import SignatureInvalid
from integrations.github.reporter import GitHubReporter
from integrations.signatures import sign, verify
from orchestrator.reporting import Reporters
from tests.integrations import signing
from tests.integrations.conftest import FIX, TOKEN, Wired
from tests.integrations.drive import COMMIT, drain, finish, queued, tasks
from tests.integrations.fake_github import Issue


def test_the_signature_matches_github_s_documented_test_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", b"Hello, World!") == expected
    verify("It's a Secret to Everybody", b"Hello, World!", expected, header="X", prefix="sha256=")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify("another secret", b"Hello, World!", expected, header="X", prefix="sha256=")


def labeled(number: int = 7, label: str = "autan", sender: str = "octocat") -> dict[str, Any]:
    return {
        "action": "labeled",
        "label": {"name": label},
        "issue": {"number": number, "title": "add() subtracts", "body": "2 + 2 gives 0"},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": sender, "type": "User"},
    }


def post(w: Wired, event: str, payload: Any, *, work: bool = True, **kw: Any) -> Any:
    """Deliver; then, unless `work` is False, a worker runs what the delivery queued."""
    body, headers = signing.github(event, payload, **kw)
    answer = w.api.post("/hooks/github", content=body, headers=headers)
    if work:
        drain(w)
    return answer


@pytest.fixture
def issue(wired: Wired) -> Wired:
    wired.github.permissions["octocat"] = "write"
    wired.github.issues[7] = Issue(
        "add() subtracts",
        "2 + 2 gives 0",
        [{"id": 1, "body": "see calc.py", "user": {"login": "hubot"}}],
    )
    return wired


def branch_file(remote: Path, branch: str) -> str:
    return subprocess.run(
        ["git", "show", f"{branch}:calc.py"], cwd=remote, capture_output=True, text=True, check=True
    ).stdout


def test_a_labelled_issue_from_a_writer_becomes_a_task_and_its_report_a_pull_request(
    issue: Wired, remote: Path
) -> None:
    w = issue
    r = post(w, "issues", labeled(), delivery="d-1", work=False)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "reason": "issue on acme/app#7", "task_id": None}
    # Answered with nothing slow done: the rest waits in Redis for a worker.
    assert w.github.requests == [] and tasks(w.services) == []
    work = {"kind": "issue", "repo": "acme/app", "number": 7, "sender": "octocat"}
    assert queued(w.services) == [
        (
            "github",
            {"key": "github:d-1", "work": {**work, "asked": "", "branch": None, "extra": {}}},
        )
    ]
    assert drain(w) == 1
    assert w.github.lines() == [
        "GET /repos/acme/app",
        "GET /repos/acme/app/collaborators/octocat/permission",
        "GET /repos/acme/app/issues/7",
        "GET /repos/acme/app/issues/7/comments",
    ]
    assert w.github.requests[0].headers["authorization"] == f"token {TOKEN}"
    [task] = tasks(w.services)
    assert task.repo == str(remote) and task.ref == "main"
    assert task.instruction.startswith("# add() subtracts\n\n2 + 2 gives 0\n\n## @hubot wrote")
    assert task.idempotency_key == "github:d-1"
    assert task.origin.kind == "github" and task.origin.external_id == "acme/app#7"
    assert task.origin.data["number"] == 7 and task.origin.data["branch"] is None

    finish(w.services, task.id, FIX)
    w.github.requests.clear()
    reporter = GitHubReporter(w.github_settings, w.common, w.routing)
    assert w.services.lifecycle.report(task.id, Reporters({"github": reporter})) == "reported"
    assert "return a + b" in branch_file(remote, f"autan/{task.id}")
    assert w.github.lines() == [
        "GET /repos/acme/app",
        "GET /repos/acme/app/pulls",
        "POST /repos/acme/app/pulls",
        "GET /repos/acme/app",
        "GET /repos/acme/app/issues/7",
        "GET /repos/acme/app/issues/7/comments",
        "POST /repos/acme/app/issues/7/comments",
    ]
    opened = w.github.requests[2].json()
    assert opened["head"] == f"autan/{task.id}" and opened["base"] == "main"
    assert opened["draft"] is True
    for part in (
        "Fixed add().",
        "Tests: 3 passed",
        "Cost: $0.42",
        f"Commit: {COMMIT}",  # in full: GitHub links it
        f"http://autan.test/tasks/{task.id}",
        f"<!-- autan:task:{task.id} -->",
    ):
        assert part in opened["body"]
    comment = w.github.requests[-1].json()["body"]
    assert "Pull request: https://github.test/acme/app/pull/500" in comment
    assert f"Commit: {COMMIT}" in comment
    assert f"<!-- autan:task:{task.id} -->" in comment

    # A crash after posting repeats the report: no second pull request, comment or commit.
    w.github.requests.clear()
    reporter.report(w.services.lifecycle.get(task.id))
    assert "POST" not in " ".join(w.github.lines())
    assert len(w.github.pulls) == 1 and len(w.github.issues[7].comments) == 2
    log = subprocess.run(
        ["git", "log", "--oneline", f"autan/{task.id}"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(log.splitlines()) == 2


def test_a_comment_mentioning_autan_on_its_pull_request_pushes_to_the_same_branch(
    issue: Wired, remote: Path
) -> None:
    w = issue
    post(w, "issues", labeled(), delivery="d-1")
    [first] = tasks(w.services)
    finish(w.services, first.id, FIX)
    reporter = GitHubReporter(w.github_settings, w.common, w.routing)
    w.services.lifecycle.report(first.id, Reporters({"github": reporter}))
    branch = f"autan/{first.id}"
    w.github.issues[500] = Issue("Autan: add() subtracts", "", [])

    comment = {
        "action": "created",
        "issue": {"number": 500, "title": "Autan", "pull_request": {"url": "x"}},
        "comment": {"body": "@autan also add a docstring", "user": {"login": "octocat"}},
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat", "type": "User"},
    }
    assert post(w, "issue_comment", comment, delivery="d-2").json()["status"] == "accepted"
    follow = next(t for t in tasks(w.services) if t.id != first.id)
    assert follow.ref == branch and follow.origin.data["branch"] == branch
    assert follow.instruction.endswith(
        "## The request, from @octocat\n\n@autan also add a docstring"
    )

    docstring = FIX.replace(
        "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n",
        '@@ -1,2 +1,3 @@\n def add(a, b):\n+    """Sum."""\n     return a + b\n',
    )
    finish(w.services, follow.id, docstring)
    w.services.lifecycle.report(follow.id, Reporters({"github": reporter}))
    assert branch_file(remote, branch) == 'def add(a, b):\n    """Sum."""\n    return a + b\n'
    assert len(w.github.pulls) == 1, "a follow-up opens no second pull request"
    assert f"<!-- autan:task:{follow.id} -->" in w.github.issues[500].comments[-1]["body"]


def test_senders_without_write_access_start_nothing(issue: Wired) -> None:
    issue.github.permissions["octocat"] = "read"
    assert post(issue, "issues", labeled()).json()["status"] == "accepted"
    assert tasks(issue.services) == []
    assert issue.github.lines()[-1] == "GET /repos/acme/app/collaborators/octocat/permission"


def test_a_repeated_delivery_makes_one_task(issue: Wired) -> None:
    first = post(issue, "issues", labeled(), delivery="same")
    again = post(issue, "issues", labeled(), delivery="same")
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200
    assert again.json() == {
        "status": "duplicate",
        "reason": "delivery same was already received",
        "task_id": None,
    }
    assert len(tasks(issue.services)) == 1
    assert queued(issue.services) == []


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("push", {"ref": "refs/heads/main"}, "event 'push' is not one Autan acts on"),
        ("issues", labeled(label="bug"), "label 'bug' is not 'autan'"),
        ("issues", {**labeled(), "action": "opened"}, "issues action 'opened' is not `labeled`"),
        (
            "issues",
            {**labeled(), "repository": {"full_name": "acme/other"}},
            "repository acme/other is not in autan.toml",
        ),
    ],
)
def test_events_not_for_autan_are_answered_and_ignored(
    issue: Wired, event: str, payload: Any, reason: str
) -> None:
    r = post(issue, event, payload)
    assert (r.status_code, r.json()) == (
        200,
        {"status": "ignored", "reason": reason, "task_id": None},
    )
    assert tasks(issue.services) == [] and issue.github.requests == []


def test_bad_deliveries_get_a_clear_status_and_create_nothing(issue: Wired) -> None:
    body, headers = signing.github("issues", labeled())
    cases = [
        ({**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}, body, 401, "does not match"),
        (
            {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"},
            body,
            401,
            "missing X-Hub-Signature-256",
        ),
        (signing.github("issues", labeled(), secret="forged")[1], body, 401, "does not match"),
        (
            {k: v for k, v in headers.items() if k != "X-GitHub-Delivery"},
            body,
            400,
            "X-GitHub-Delivery",
        ),
    ]
    bad_json = b"{not json"
    cases.append(
        (
            {**headers, "X-Hub-Signature-256": sign(signing.GITHUB_SECRET, bad_json)},
            bad_json,
            400,
            "not JSON",
        )
    )
    shapeless = b'{"action": "labeled"}'
    cases.append(
        (
            {**headers, "X-Hub-Signature-256": sign(signing.GITHUB_SECRET, shapeless)},
            shapeless,
            422,
            "issues payload",
        )
    )
    for sent, content, status, reason in cases:
        r = issue.api.post("/hooks/github", content=content, headers=sent)
        assert r.status_code == status, (reason, r.text)
        assert reason in r.json()["detail"]
    assert tasks(issue.services) == [] and issue.github.requests == []
    assert queued(issue.services) == []


def test_without_a_webhook_secret_github_deliveries_are_refused(issue: Wired) -> None:
    issue.hub.github.settings = issue.github_settings.model_copy(update={"webhook_secret": None})
    r = post(issue, "issues", labeled())
    assert r.status_code == 503
    assert "AUTAN_GITHUB_WEBHOOK_SECRET is not set" in r.json()["detail"]
    assert tasks(issue.services) == []


UNVERIFIED = (
    "unverified: 0 fixed, 2 still passing, 0 broken, 0 vanished (python -m pytest -q); "
    "no test that failed on the base passes now"
)


def test_an_unverified_result_gets_a_comment_saying_how_to_get_the_diff_and_no_pull_request(
    issue: Wired, remote: Path
) -> None:
    w = issue
    post(w, "issues", labeled(), delivery="d-u")
    [task] = tasks(w.services)
    done = finish(w.services, task.id, FIX, tests_outcome=UNVERIFIED, verified=False)
    assert done.state == "unverified"
    w.github.requests.clear()
    reporter = GitHubReporter(w.github_settings, w.common, w.routing)
    assert w.services.lifecycle.report(task.id, Reporters({"github": reporter})) == "reported"
    assert w.github.lines() == [
        "GET /repos/acme/app",
        "GET /repos/acme/app/issues/7",
        "GET /repos/acme/app/issues/7/comments",
        "POST /repos/acme/app/issues/7/comments",
    ]
    assert w.github.pulls == []
    comment = w.github.requests[-1].json()["body"]
    assert comment.startswith(
        f"Task unverified: no attempt verified; kept attempt 1 of 1: {UNVERIFIED}"
    )
    assert f"`autan diff {task.id}` prints the diff" in comment
    assert f"Tests: {UNVERIFIED}" in comment and "Pull request" not in comment
    branches = subprocess.run(
        ["git", "branch", "--list", f"autan/{task.id}"], cwd=remote, capture_output=True, text=True
    )
    assert branches.stdout == ""  # nothing pushed


def test_with_report_unverified_draft_an_unverified_result_opens_a_draft_titled_unverified(
    issue: Wired, remote: Path
) -> None:
    w = issue
    w.common.report_unverified = "draft"
    w.github_settings.draft = False  # a verified result would open a ready pull request
    post(w, "issues", labeled(), delivery="d-d")
    [task] = tasks(w.services)
    finish(w.services, task.id, FIX, tests_outcome=UNVERIFIED, verified=False)
    reporter = GitHubReporter(w.github_settings, w.common, w.routing)
    w.github.requests.clear()
    assert w.services.lifecycle.report(task.id, Reporters({"github": reporter})) == "reported"
    assert "POST /repos/acme/app/pulls" in w.github.lines()
    opened = next(r for r in w.github.requests if r.path.endswith("/pulls") and r.method == "POST")
    body = opened.json()
    assert body["draft"] is True
    assert body["title"] == "[unverified] Autan: add() subtracts"
    assert f"Tests: {UNVERIFIED}" in body["body"]
    assert "return a + b" in branch_file(remote, f"autan/{task.id}")
    comment = w.github.requests[-1].json()["body"]
    assert "Pull request: https://github.test/acme/app/pull/" in comment
    assert "Result: unverified: the repository's tests did not prove" in comment
