"""`autan`'s command table: every command listed still loads, and starting imports only what runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import COMMANDS, app, load
from tests.workers import ROOT

# Never needed to list the commands or to run one in a sandbox. (Typer reads values through
# pydantic, and sandbox settings once were pydantic models: cli.plainvalues reads plain ones.)
HEAVY = {
    "alembic",
    "celery",
    "fastapi",
    "git",
    "httpx",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "redis",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "watchdog",
    "agent",
    "integrations",
    "orchestrator",
    "serving",
    "sync",
    "web",
}

# Runs `autan ARGS...` in a fresh interpreter, then prints the top-level modules it imported.
MODULES_AFTER = """
import json, sys
from cli.main import app
try:
    app(sys.argv[1:], prog_name="autan")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}),
      file=sys.stderr)
"""


def modules_after(*args: str) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stderr.splitlines()[-1])
    return report["code"], set(report["modules"]), done.stdout


def listed(output: str) -> list[str]:
    """The command names in the Commands panel of `autan --help`."""
    panel = output.split("Commands")[1]
    return [line.split()[1] for line in panel.splitlines() if line.startswith("│ ")]


def test_help_lists_every_command_without_importing_any() -> None:
    code, modules, out = modules_after("--help")
    assert code == 0
    assert listed(out) == list(COMMANDS)
    assert modules & HEAVY == set()
    assert not any(m.startswith("cli.") for m in modules if m != "cli")
    for name, (_, help_text) in COMMANDS.items():
        assert re.search(rf"│ {name} +{re.escape(help_text)}", out), name


def test_sandbox_run_imports_the_sandbox_and_nothing_heavy(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "README").write_text("hello\n")
    root = str(tmp_path / "sandboxes")
    run = ["sandbox", "run", "--base", str(base), "--root", root, "--", "cat", "README"]
    code, modules, out = modules_after(*run)
    assert (code, out) == (0, "hello\n")
    assert "sandbox" in modules
    assert modules & HEAVY == set()
    assert "rich" not in modules  # only help and errors are drawn with it


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_command_loads_and_shows_its_own_help(name: str) -> None:
    command = load(name)
    assert command.name == name
    # The line `autan --help` shows is the command's own first line, not a stale copy.
    assert " ".join((command.help or "").split("\n\n")[0].split()) == COMMANDS[name][1]
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Usage: autan {name} [OPTIONS]" in result.output
    for sub in getattr(command, "commands", {}):
        result = CliRunner().invoke(app, [name, sub, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert f"Usage: autan {name} {sub} [OPTIONS]" in result.output


def test_an_unknown_command_fails_and_suggests_the_near_one() -> None:
    result = CliRunner().invoke(app, ["sandbx", "run"])
    assert result.exit_code == 2
    assert "No such command 'sandbx'. Did you mean 'sandbox'?" in result.output


def test_autan_sandbox_run_is_a_command_of_the_installed_autan(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    root = str(tmp_path / "sandboxes")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "sandbox", "run", "--base", str(base), "--root", root,
         "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
