"""The `autan` command: the task commands and the server commands on one typer app."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from cli import demo, model, render, server, tasks
from cli import sandbox as sandbox_cli
from cli import sync as sync_cli
from cli.errors import CliError
from orchestrator.errors import OrchestratorError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="autan",
    help="Run coding agents on your own machines. Talks to AUTAN_URL with AUTAN_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(
    help="API tokens (on the server: works on the database directly).", no_args_is_help=True
)
app.add_typer(token_app, name="token")
app.add_typer(model.app, name="model")
app.add_typer(sandbox_cli.app, name="sandbox")


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Errors we can explain end the command as one red line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (CliError, OrchestratorError) as exc:
            render.error(str(exc))
            raise typer.Exit(1) from exc

    return wrapper


COMMANDS: list[tuple[str, Callable[..., None]]] = [
    ("run", tasks.run),
    ("status", tasks.status),
    ("logs", tasks.logs),
    ("cancel", tasks.cancel),
    ("up", server.up),
    ("worker", server.worker),
    ("migrate", server.migrate),
    ("gc", server.gc),
    ("demo", demo.demo),
    ("sync", sync_cli.sync),
    ("pull", sync_cli.pull),
]
for name, command in COMMANDS:
    app.command(name)(reported(command))
token_app.command("create")(reported(server.token_create))
token_app.command("revoke")(reported(server.token_revoke))


def main() -> None:
    app(prog_name="autan")
