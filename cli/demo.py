"""`autan demo`: a whole task on a bundled repository with a real bug, on the scripted model."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.base import AttemptContext, AttemptFailed
from orchestrator.schemas import TaskView

AGENT_DIR = Path(__file__).resolve().parent.parent / "agent"
DEMO_REPO = AGENT_DIR / "demo_repo"
DEMO_POLICY = AGENT_DIR / "demo_policy.json"
INSTRUCTION = "Totals with a discount code are wrong; the cart's tests fail. Fix it."
GIT_ENV = {
    "GIT_AUTHOR_NAME": "autan demo", "GIT_AUTHOR_EMAIL": "demo@autan.invalid",
    "GIT_COMMITTER_NAME": "autan demo", "GIT_COMMITTER_EMAIL": "demo@autan.invalid",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}  # fmt: skip


def _repository(root: Path) -> Path:
    """The bundled repository as a real git repository with one commit."""
    repo = root / "cart"
    shutil.copytree(DEMO_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "cart"]):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    return repo


def _show(kind: str, data: dict[str, Any]) -> None:
    if kind == "model.message" and data.get("text"):
        typer.echo(typer.style("model  ", fg="cyan") + str(data["text"]))
    elif kind == "tool.call":
        typer.echo(typer.style("call   ", fg="yellow") + f"{data['name']} {data['arguments']}")
    elif kind == "tool.output":
        lines = str(data.get("output", "")).splitlines()
        shown = lines[:8] + ([f"... ({len(lines) - 8} more lines)"] if len(lines) > 8 else [])
        for line in shown:
            typer.echo(typer.style("       | ", dim=True) + line)
    elif kind == "file.change":
        typer.echo(typer.style("change ", fg="magenta") + f"{data['status']} {data['path']}")


def _context(repo: Path) -> AttemptContext:
    now = datetime.now(UTC)
    task = TaskView.model_validate(
        {
            "id": "demo", "state": "running", "reason": None, "repo": str(repo), "ref": None,
            "instruction": INSTRUCTION, "attempts_requested": 1, "idempotency_key": None,
            "origin": {"kind": "cli", "external_id": None, "data": {}}, "created_at": now,
            "started_at": now, "finished_at": None, "attempts": [], "result": None,
        }
    )  # fmt: skip
    phase = lambda state: typer.echo(typer.style(f"-- {state}", bold=True))  # noqa: E731
    return AttemptContext(task, "demo-1", 1, _show, phase, threading.Event())


def demo(
    sandbox: Annotated[
        str, typer.Option(help="Sandbox backend: `local` (no isolation) or `bwrap`.")
    ] = "local",
    delay_ms: Annotated[
        int, typer.Option(min=0, help="The scripted model's pause before each reply.")
    ] = 150,
) -> None:
    """Run a whole task on a small bundled repository with a real bug, on the scripted model."""
    # Imported here: every other command would pay for the agent stack and the server.
    from agent.baseline import MemoryBaselines
    from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
    from serving.script import load_script
    from serving.scripted import start_in_thread

    script = load_script(DEMO_POLICY).model_copy(update={"delay_ms": delay_ms})
    with tempfile.TemporaryDirectory(prefix="autan-demo-") as tmp:
        root = Path(tmp)
        repo = _repository(root)
        server = start_in_thread(script)
        try:
            settings = AgentRunnerSettings(
                model_url=server.url, model_name=script.model, sandbox_backend=sandbox,
                sandbox_root=root / "sandboxes", trees_dir=root / "trees",
            )  # fmt: skip
            typer.echo(typer.style(f"task: {INSTRUCTION}", bold=True))
            typer.echo(f"repository: {repo} (bundled, with a real bug)\nmodel: {server.url}\n")
            try:
                runner = AgentRunner(settings, baselines=MemoryBaselines())
                outcome = runner.run(_context(repo))
            except AttemptFailed as exc:
                typer.echo(typer.style(f"the attempt failed: {exc}", fg="red"), err=True)
                raise typer.Exit(1) from exc
        finally:
            server.stop()
    typer.echo(typer.style("\nsummary: ", bold=True) + outcome.summary)
    typer.echo(typer.style("diff:", bold=True))
    for line in outcome.diff.splitlines():
        color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        typer.echo(typer.style(line, fg=color))
    typer.echo(typer.style(f"\ntests: {outcome.tests_outcome}", bold=True))
    typer.echo(
        f"tokens: {outcome.tokens_in} in, {outcome.tokens_out} out; cost ${outcome.cost_usd:.4f}"
    )
    if not outcome.verified:
        raise typer.Exit(1)
