"""`autan diff` and `autan apply`: an attempt's diff, printed or applied to a git checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.client import AttemptDiff
from cli.errors import CliError
from cli.tasks import client

AttemptOption = Annotated[
    int | None,
    typer.Option("--attempt", "-a", min=1, help="This attempt's diff, not the kept one."),
]


def diff(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    attempt: AttemptOption = None,
) -> None:
    """Print an attempt's diff: the kept attempt's, else the best one left (partial too)."""
    with client() as api:
        found = api.diff(task_id, attempt=attempt)
    sys.stdout.write(found.text)  # as it is, for a pipe into `git apply` or `patch`
    render.console(stderr=True).print(_about(task_id, found), style="dim", markup=False)


def apply(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    path: Annotated[Path, typer.Argument(help="A git checkout of the task's repository.")] = Path(
        "."
    ),
    attempt: AttemptOption = None,
) -> None:
    """Apply an attempt's diff to a git checkout with `git apply --3way`."""
    top = _checkout_root(path)
    with client() as api:
        found = api.diff(task_id, attempt=attempt)
    done = subprocess.run(
        ["git", "apply", "--3way", "--whitespace=nowarn", "-"],
        cwd=top,
        input=found.text.encode(),
        capture_output=True,
    )
    said = (done.stdout + done.stderr).decode(errors="replace").strip()
    conflicted = [line[2:].strip() for line in said.splitlines() if line.startswith("U ")]
    if conflicted:
        raise CliError(
            f"{_about(task_id, found)} applied to {top} with conflicts in "
            f"{', '.join(conflicted)}: resolve the <<<<<<< marks there, then `git add` them"
        )
    if done.returncode != 0:
        last = (said or "git apply failed").splitlines()[-1]
        raise CliError(
            f"{_about(task_id, found)} does not apply to {top}: {last}; "
            "check out the commit it was made on and try again"
        )
    render.console().print(f"applied {_about(task_id, found)} to {top}", markup=False)


def _about(task_id: str, found: AttemptDiff) -> str:
    parts = [f"the diff of attempt {found.attempt} of task {task_id}"]
    if found.commit:
        parts.append(f"on commit {found.commit[:12]}")
    if found.partial:
        parts.append("(partial: the attempt ended before it finished)")
    return " ".join(parts)


def _checkout_root(path: Path) -> Path:
    if not path.is_dir():
        raise CliError(f"{path} is not a directory: give the path of a git checkout")
    done = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise CliError(
            f"{path.resolve()} is not a git checkout: run this inside the task's repository, "
            "or give its path"
        )
    return Path(done.stdout.strip())
