"""The wrapper that ends a command on an error we can explain: one red line, exit status 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from cli import render
from cli.errors import CliError
from orchestrator.errors import OrchestratorError

P = ParamSpec("P")
R = TypeVar("R")


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
