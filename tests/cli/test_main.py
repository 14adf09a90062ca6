"""`autan`'s command table: every command listed still loads, and starting imports only what runs."""

from __future__ import annotations

import json
import os
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

# Drawn with rich, which `autan --help` and `autan sandbox run` never import (its import alone
# took longer than the rest of `autan --help`).
RICH = {"rich", "markdown_it", "pygments"}

# Runs `autan ARGS...` in a fresh interpreter, then prints the modules it imported.
MODULES_AFTER = """
import json, sys
from cli.main import app
try:
    app(sys.argv[1:], prog_name="autan")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def modules_after(*args: str, columns: int = 200) -> tuple[int, set[str], str, str]:
    """`autan ARGS...`'s exit code, the modules it imported, its stdout and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    *err, last = done.stderr.splitlines()
    report = json.loads(last)
    return report["code"], set(report["modules"]), done.stdout, "\n".join(err)


def packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def listed(output: str) -> dict[str, str]:
    """Each command in the Commands section of `autan --help`, with its help joined into one
    line again where the terminal's width wrapped it."""
    rows: dict[str, str] = {}
    for line in output.split("\nCommands:\n")[1].splitlines():
        if line.startswith("   "):
            rows[list(rows)[-1]] += " " + line.strip()
        elif line.strip():
            name, help_text = line.split(maxsplit=1)
            rows[name] = help_text
    return rows


@pytest.mark.parametrize("columns", [200, 60])
def test_help_lists_every_command_in_full_without_importing_any(columns: int) -> None:
    code, modules, out, _ = modules_after("--help", columns=columns)
    assert code == 0
    assert out.startswith("Usage: autan [OPTIONS] COMMAND [ARGS]...\n")
    # Every line whole, however narrow the terminal: wrapped, never cut short.
    assert listed(out) == {name: help_text for name, (_, help_text) in COMMANDS.items()}
    assert max(map(len, out.splitlines())) <= columns
    assert packages(modules) & (HEAVY | RICH) == set()
    # No command's module: only the table and what reads plain values.
    assert {m for m in modules if m.startswith("cli.")} == {"cli.main", "cli.plainvalues"}


def test_sandbox_run_imports_the_sandbox_and_nothing_heavy(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "README").write_text("hello\n")
    root = str(tmp_path / "sandboxes")
    run = ["sandbox", "run", "--base", str(base), "--root", root, "--", "cat", "README"]
    code, modules, out, _ = modules_after(*run)
    assert (code, out) == (0, "hello\n")
    assert "sandbox.bwrap" in modules
    assert packages(modules) & (HEAVY | RICH) == set()
    # What only a diff needs is imported when one is asked for.
    assert "sandbox.diff" not in modules


def test_a_bad_option_is_refused_plainly_without_rich(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"
    run = ["sandbox", "run", "--base", str(tmp_path), "--root", str(root), "--pids", "0", "--"]
    code, modules, out, err = modules_after(*run, "true")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "Error: Invalid value for '--pids': Input should be greater than or equal to 1"
    )
    assert "Try 'autan sandbox run --help' for help." in err
    assert packages(modules) & RICH == set()
    assert not root.exists()


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
