"""Repository URLs that would make git run a program or read an option are refused."""

from __future__ import annotations

import pytest

from orchestrator import store
from orchestrator.errors import InvalidSubmission
from orchestrator.executor import AttemptExecutor
from orchestrator.models import utcnow
from orchestrator.repo_urls import refusal
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import TaskState
from tests.orchestrator.runners import ScriptedRunner

UNSAFE = {
    "ext::sh -c touch% /tmp/pwned": "git's transport::address form runs a remote helper program",
    "file::/srv/repo.git": "git's transport::address form runs a remote helper program",
    "fd::3": "git's transport::address form runs a remote helper program",
    "--upload-pack=touch /tmp/pwned": "it would be read as an option of git",
    "-u sh": "it would be read as an option of git",
    "ftp://example.com/repo.git": "use one of https, http, ssh, git, file",
}
SAFE = [
    "https://github.com/acme/app.git",
    "ssh://git@github.com/acme/app.git",
    "git@github.com:acme/app.git",
    "file:///srv/repo.git",
    "/srv/repo.git",
    "relative/repo",
    "workspace:0123abcd@7",
]


@pytest.mark.parametrize("repo", sorted(UNSAFE))
def test_unsafe_repository_urls_are_refused_at_submission(services: Services, repo: str) -> None:
    with pytest.raises(InvalidSubmission) as refused:
        services.lifecycle.submit(TaskSpec(repo=repo, instruction="do it"))
    assert str(refused.value) == f"repository URL not allowed: {repo!r} ({UNSAFE[repo]})"
    assert services.queue.depth() == 0


def test_safe_repository_urls_pass() -> None:
    assert [refusal(repo) for repo in SAFE] == [None] * len(SAFE)


def test_a_stored_task_with_an_unsafe_url_fails_saying_so(services: Services) -> None:
    # A task stored before submissions were checked: the worker refuses it before any clone.
    spec = TaskSpec(repo="ext::sh -c id", instruction="{}")
    with services.sessions.begin() as session:
        task = store.create_task(session, spec=spec, attempts=1, created_by=None, now=utcnow())
        attempt_id, task_id = task.attempts[0].id, task.id
    executor = AttemptExecutor(services.lifecycle, ScriptedRunner(), "w")
    assert executor.execute(attempt_id) == "failed"
    done = services.lifecycle.get(task_id)
    assert done.state == TaskState.FAILED
    reason = "repository URL not allowed: 'ext::sh -c id' (git's transport::address form "
    assert done.attempts[0].reason is not None and done.attempts[0].reason.startswith(reason)
    assert done.attempts[0].runs == 1
