"""Branches the worker pushes: a task's diff applied onto a fresh clone, committed, pushed.

This runs in the worker, outside any sandbox, with the integration's token; the token
travels in git's environment, never on a command line or in a URL.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from integrations.errors import PublishError
from sandbox.gitnames import has_git_name

log = logging.getLogger(__name__)

TRAILER = "Autan-Task"
HISTORY_DEPTH = 50
"""Commits of an existing branch searched for this task's commit."""


@dataclass(frozen=True)
class Pushed:
    branch: str
    sha: str
    new: bool
    """False when the branch already held this task's commit (a retried report)."""
    left_out: tuple[str, ...] = ()
    """Paths of the diff not pushed because they name `.git` (in some letter case)."""


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
        diff, left_out = without_git_names(diff)
        if left_out:
            log.warning("task %s: not pushed, git's own names: %s", task_id, ", ".join(left_out))
        if "\ndiff --git " not in f"\n{diff}":
            raise PublishError("the task's result has no diff: nothing to push")
        git("apply", "--index", "--whitespace=nowarn", "-", stdin=diff)
        git("commit", "-q", "-m", f"{message}\n\n{TRAILER}: {task_id}")
        sha = git("rev-parse", "HEAD").strip()
        git("push", "-q", url, f"HEAD:refs/heads/{branch}")
        return Pushed(branch, sha, new=True, left_out=tuple(left_out))


_SECTION = re.compile(r"^(?=diff --git )", re.M)
_NAMES = re.compile(
    r"^(?:diff --git |--- |\+\+\+ |rename from |rename to |copy from |copy to )(.*)$", re.M
)


def without_git_names(diff: str) -> tuple[str, list[str]]:
    """`diff` without the files whose paths name `.git` (git refuses the whole patch over one
    of them, `invalid path`), and those paths. A path is judged on every line that names it,
    split every way the header allows, so a space in a name cannot hide it."""
    kept: list[str] = []
    left_out: list[str] = []
    for section in _SECTION.split(diff):
        head = section.split("\n@@", 1)[0]  # the hunks' own lines name nothing
        named = [n.replace('"', "") for n in _NAMES.findall(head)]
        if not any(has_git_name(part) for n in named for part in n.split(" ")):
            kept.append(section)
            continue
        both = named[0]  # `a/PATH b/PATH`: the first half, when the two are one path
        half = both[2 : (len(both) - 1) // 2]
        left_out.append(half if both == f"a/{half} b/{half}" else both)
    return "".join(kept), left_out
