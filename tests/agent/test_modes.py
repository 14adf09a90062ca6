"""write_file and edit_file keep a file's mode; `executable` sets it; diffs carry no mode change."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.base import ToolEnv
from agent.errors import ToolFailed
from agent.tools import make_tools
from sandbox import SandboxConfig, create_sandbox
from sandbox.base import Sandbox
from sandbox.config import LimitsConfig


@pytest.fixture(params=["bwrap", "local"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sandbox]:
    base = tmp_path / "base"
    base.mkdir()
    (base / "run.sh").write_text("#!/bin/sh\necho one\n")
    (base / "run.sh").chmod(0o755)
    (base / "notes.txt").write_text("notes\n")
    (base / "notes.txt").chmod(0o644)
    limits = LimitsConfig(memory="256M", pids=64, disk="64M", timeout_s=60)
    config = SandboxConfig(backend=request.param, root=tmp_path / "sbx", limits=limits)
    sbx = create_sandbox(base, config)
    yield sbx
    sbx.close()


def use(sandbox: Sandbox, tool: str, **arguments: object) -> str:
    env = ToolEnv(sandbox, {"PATH": os.environ["PATH"]}, 30.0, 1 << 16)
    return make_tools([tool])[tool].run(arguments, env).text


def mode(sandbox: Sandbox, path: str) -> str:
    return sandbox.exec(["stat", "-c", "%a", path]).stdout.strip()


def test_edits_to_an_executable_keep_it_executable_and_the_diff_has_no_mode_change(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    use(sandbox, "edit_file", path="run.sh", old="one", new="two")
    assert mode(sandbox, "run.sh") == "755"
    assert sandbox.exec("./run.sh").stdout == "two\n"
    use(sandbox, "write_file", path="run.sh", content="#!/bin/sh\necho three\n")
    assert mode(sandbox, "run.sh") == "755"
    assert sandbox.exec("./run.sh").stdout == "three\n"

    diff = sandbox.diff()
    assert "old mode" not in diff and "new mode" not in diff
    assert "index " in diff and " 100755\n" in diff  # the unchanged mode, as git writes it
    # git agrees: the diff applies to a checkout and leaves the script executable.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "run.sh").write_text("#!/bin/sh\necho one\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "notes.txt").write_text("notes\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "apply"], input=diff.encode(), check=True)
    assert os.stat(repo / "run.sh").st_mode & 0o777 == 0o755


def test_new_files_are_0644_and_executable_sets_the_mode_both_ways(sandbox: Sandbox) -> None:
    use(sandbox, "write_file", path="new/plain.py", content="x = 1\n")
    use(sandbox, "write_file", path="tool.sh", content="#!/bin/sh\necho t\n", executable=True)
    use(sandbox, "write_file", path="notes.txt", content="now run me\n", executable=True)
    use(sandbox, "write_file", path="run.sh", content="not a script\n", executable=False)

    assert mode(sandbox, "new/plain.py") == "644"
    assert mode(sandbox, "tool.sh") == "755"
    assert sandbox.exec("./tool.sh").stdout == "t\n"
    assert mode(sandbox, "notes.txt") == "755"
    assert mode(sandbox, "run.sh") == "644"
    diff = sandbox.diff()
    assert "diff --git a/tool.sh b/tool.sh\nnew file mode 100755\n" in diff
    assert "diff --git a/new/plain.py b/new/plain.py\nnew file mode 100644\n" in diff
    assert "diff --git a/notes.txt b/notes.txt\nold mode 100644\nnew mode 100755\n" in diff
    assert "diff --git a/run.sh b/run.sh\nold mode 100755\nnew mode 100644\n" in diff


def test_a_bad_executable_value_is_told_to_the_model(sandbox: Sandbox) -> None:
    with pytest.raises(ToolFailed, match="executable"):
        use(sandbox, "write_file", path="x.sh", content="x", executable="sometimes")
    assert "x.sh" not in sandbox.list_files()
