"""The task commands: run, status, logs, cancel, say, continue; thin calls on the API."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from cli import render
from cli.client import AutanClient
from cli.config import CliSettings, load
from cli.errors import CliError, Conflict
from orchestrator.repo_urls import REMOTE
from orchestrator.schemas import TaskView
from orchestrator.states import TaskState


def client() -> AutanClient:
    settings = load(CliSettings)
    return AutanClient(settings.url, settings.resolved_token)


def repo_argument(repo: str) -> str:
    """A URL, or a workspace's version (`workspace:<id>@N`), as given; anything else is a
    local path, sent absolute."""
    if REMOTE.match(repo) or repo.startswith("workspace:"):
        return repo
    return os.path.abspath(os.path.expanduser(repo))


def run(
    instruction: Annotated[str, typer.Argument(help="What the agent should do.")],
    repo: Annotated[str | None, typer.Option(help="Repository: a local path or a URL.")] = None,
    ref: Annotated[str | None, typer.Option(help="Branch, tag or commit to start from.")] = None,
    attempts: Annotated[
        int | None, typer.Option(min=1, help="Attempts to run in parallel; the best is kept.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream its events until it ends.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting the same key again returns the same task.")
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(help="Start from this synced checkout's current snapshot (not --repo)."),
    ] = None,
) -> None:
    """Submit a task; with --follow, exit 0 only if it succeeds."""
    if (repo is None) == (workspace is None):
        raise typer.BadParameter("give --repo or --workspace, one of them")
    if workspace is not None:
        if ref is not None:
            raise typer.BadParameter("--ref goes with --repo; a workspace starts from its head")
        # The sync daemon (watchdog, the blob store) loads only for a task from a workspace.
        from cli.sync import workspace_base

        repo, ref = workspace_base(workspace)
    else:
        repo = repo_argument(repo or "")
    out = render.console()
    with client() as api:
        task, created = api.submit(
            repo=repo,
            instruction=instruction,
            ref=ref,
            attempts=attempts,
            idempotency_key=idempotency_key,
        )
        line = Text(f"task {task.id} ")
        line.append_text(render.state(task.state))
        if not created:
            line.append(" (already submitted with this idempotency key)")
        out.print(line)
        if not follow:
            out.print(f"follow it with: autan logs -f {task.id}", style="dim", markup=False)
            return
        try:
            _print_events(out, api, task, follow=True)
        except KeyboardInterrupt:
            render.console(stderr=True).print(
                f"stopped following; the task goes on: `autan logs -f {task.id}` follows it "
                f"again, `autan cancel {task.id}` stops it",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        final = api.get(task.id)
    out.print(render.ending(final), soft_wrap=True)
    if final.state != TaskState.SUCCEEDED:
        raise typer.Exit(1)


def status(
    task_id: Annotated[str | None, typer.Argument(help="A task's id; none lists tasks.")] = None,
    state: Annotated[TaskState | None, typer.Option(help="List only tasks in this state.")] = None,
    repo: Annotated[str | None, typer.Option(help="List only tasks of this repository.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many tasks to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """List recent tasks, or show one task with its attempts and result."""
    if task_id is not None and (state is not None or repo is not None):
        raise typer.BadParameter("--state and --repo filter the list; give them without an ID")
    now, out = datetime.now(UTC), render.console()
    with client() as api:
        if task_id is not None:
            task = api.get(task_id)
            if as_json:
                typer.echo(task.model_dump_json(indent=2))
            else:
                out.print(render.task_details(task, now))
            return
        repo = repo_argument(repo) if repo is not None else None
        page = api.list(state=state, repo=repo, limit=limit)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
    elif not page.items:
        out.print("no tasks" + (" match" if state or repo else " yet"))
    else:
        out.print(render.task_table(page.items, now))


def logs(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the task ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Print a task's events: seq, time, attempt, kind and data."""
    with client() as api:
        _print_events(render.console(), api, api.get(task_id), follow=follow, as_json=as_json)


def cancel(task_id: Annotated[str, typer.Argument(help="The task's id.")]) -> None:
    """Cancel a task that has not ended; its running attempts stop within seconds."""
    with client() as api:
        try:
            task = api.cancel(task_id)
        except Conflict as exc:
            raise CliError(f"{exc}; there is nothing to cancel") from exc
    render.console().print(render.ending(task), soft_wrap=True)


def say(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    text: Annotated[str, typer.Argument(help="What to tell its agents.")],
    attempt: Annotated[
        int | None, typer.Option(min=1, help="Only this attempt (its number); else every one.")
    ] = None,
) -> None:
    """Tell a running task's agents something; each reads it before its next model call."""
    with client() as api:
        try:
            event = api.say(task_id, text, attempt=attempt)
        except Conflict as exc:
            raise CliError(f"{exc}; `autan run` a new task instead") from exc
    to = f"attempt {attempt}" if attempt is not None else "every running attempt"
    render.console().print(f"sent to {to} of task {task_id} (event {event.seq})", soft_wrap=True)


def continue_(
    task_id: Annotated[str, typer.Argument(help="The finished task's id.")],
    instruction: Annotated[str, typer.Argument(help="What to do next.")],
    attempt: Annotated[
        int | None,
        typer.Option(min=1, help="Start from this attempt's diff (its number); else the kept one."),
    ] = None,
) -> None:
    """Continue a finished task: a new task from an attempt's diff and the conversation so far.

    Its diff is against the same base commit, so it holds the earlier change too."""
    with client() as api:
        try:
            task = api.continue_task(task_id, instruction, attempt=attempt)
        except Conflict as exc:
            raise CliError(f"{exc}; `autan say` tells a running task something") from exc
    start = task.continued_from
    attempt_note = f" from attempt {start.attempt}" if start is not None else ""
    render.console().print(f"task {task.id} continues task {task_id}{attempt_note}", soft_wrap=True)


def _print_events(
    out: Console, api: AutanClient, task: TaskView, *, follow: bool, as_json: bool = False
) -> None:
    numbers = {attempt.id: attempt.number for attempt in task.attempts}
    for event in api.events(task.id, follow=follow):
        if as_json:
            typer.echo(event.model_dump_json())
        else:
            out.print(render.event_line(event, numbers), soft_wrap=True)
