"""Branches the worker pushes: a task's diff applied onto a fresh clone, committed, pushed.

This runs in the worker, outside any sandbox, with the integration's token; the token
travels in git's environment, never on a command line or in a URL.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from integrations.errors import PublishError

TRAILER = "Autan-Task"
HISTORY_DEPTH = 50
"""Commits of an existing branch searched for this task's commit."""


@dataclass(frozen=True)
class Pushed:
    branch: str
    sha: str
    new: bool
    """False when the branch already held this task's commit (a retried report)."""


class Git:
    """Runs git in a scratch directory with the credentials in its environment."""

    def __init__(self, directory: Path, token: str | None) -> None:
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            self.env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
            )
        self.token = token

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.directory,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            message = done.stderr.strip() or done.stdout.strip()
            if self.token:
                message = message.replace(self.token, "[redacted]")
            raise PublishError(f"git {args[0]} failed: {message}")
        return done.stdout


def push_branch(
    *,
    url: str,
    base: str,
    branch: str,
    diff: str,
    message: str,
    task_id: str,
    token: str | None = None,
    author: str = "Autan <autan@localhost>",
) -> Pushed:
    """Put the task's diff on `branch`: a new branch from `base`, or the next commit on it.

    Idempotent by task: when the branch already holds a commit with this task's trailer,
    nothing is pushed again.
    """
    name, _, email = author.partition(" <")
    with tempfile.TemporaryDirectory(prefix="autan-push-") as tmp:
        git = Git(Path(tmp), token)
        git("init", "-q")
        git("config", "user.name", name)
        git("config", "user.email", email.rstrip(">"))
        exists = bool(git("ls-remote", "--heads", url, f"refs/heads/{branch}").strip())
        start = branch if exists else base
        git("fetch", "-q", f"--depth={HISTORY_DEPTH}", url, f"refs/heads/{start}")
        git("checkout", "-q", "--detach", "FETCH_HEAD")
        if exists:
            found = git("log", "--format=%H", f"--grep=^{TRAILER}: {task_id}$", "FETCH_HEAD")
            if found.strip():
                return Pushed(branch, found.split()[0], new=False)
        if not diff.strip():
            raise PublishError("the task's result has no diff: nothing to push")
        git("apply", "--index", "--whitespace=nowarn", "-", stdin=diff)
        git("commit", "-q", "-m", f"{message}\n\n{TRAILER}: {task_id}")
        sha = git("rev-parse", "HEAD").strip()
        git("push", "-q", url, f"HEAD:refs/heads/{branch}")
        return Pushed(branch, sha, new=True)
