"""push_branch on a real bare repository: git's own names in a diff are never pushed."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.errors import PublishError
from integrations.gitpush import push_branch
from tests.integrations.conftest import FIX, git


def added(path: str, text: str) -> str:
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1 @@\n+{text}\n"
    )


HOSTILE = (
    added(".GIT/config", "[core]")
    + FIX
    + added("sub/.git/config", "[core]")
    + added("a b/.Git/hooks/x", "evil")
    + "diff --git a/x b/.git/hooks/post-checkout\nsimilarity index 100%\n"
    + "rename from x\nrename to .git/hooks/post-checkout\n"
    + added("notes.md", "--- a/.git/config is only text in a file")
    + "git's own name: sub/.git, not in this diff\n"
)


def test_git_names_in_a_diff_are_left_out_of_the_push_and_said_once(
    remote: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="integrations.gitpush"):
        pushed = push_branch(
            url=str(remote), base="main", branch="autan/t1", diff=HOSTILE,
            message="Fix add", task_id="t1",
        )  # fmt: skip

    assert pushed.new and pushed.left_out == (
        ".GIT/config", "sub/.git/config", "a b/.Git/hooks/x", "a/x b/.git/hooks/post-checkout",
    )  # fmt: skip
    files = git("ls-tree", "-r", "--name-only", pushed.sha, cwd=remote).split()
    assert files == ["calc.py", "notes.md"]
    assert "return a + b" in git("show", f"{pushed.sha}:calc.py", cwd=remote)
    assert [r.getMessage() for r in caplog.records] == [
        "task t1: not pushed, git's own names: .GIT/config, sub/.git/config, "
        "a b/.Git/hooks/x, a/x b/.git/hooks/post-checkout"
    ]


def test_a_diff_of_git_names_only_pushes_nothing(remote: Path) -> None:
    with pytest.raises(PublishError, match="nothing to push"):
        push_branch(
            url=str(remote), base="main", branch="autan/t2",
            diff=added(".GIT/hooks/post-checkout", "evil"), message="m", task_id="t2",
        )  # fmt: skip
    assert git("ls-remote", "--heads", str(remote), "autan/t2", cwd=remote) == ""
