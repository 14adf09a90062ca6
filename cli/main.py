"""The `autan` command: a table of its commands, each imported only when it runs."""

from __future__ import annotations

import importlib
import textwrap
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand
from typer.main import get_command

from cli.plainvalues import PlainGroup

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter

# name: (module:attribute, the one line `autan --help` shows). A function becomes one command
# (its errors reported as one red line); a typer app becomes a group of commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cli.tasks:run", "Submit a task; with --follow, exit 0 only if it succeeds."),
    "status": (
        "cli.tasks:status",
        "List recent tasks, or show one task with its attempts and result.",
    ),
    "logs": ("cli.tasks:logs", "Print a task's events: seq, time, attempt, kind and data."),
    "cancel": (
        "cli.tasks:cancel",
        "Cancel a task that has not ended; its running attempts stop within seconds.",
    ),
    "say": (
        "cli.tasks:say",
        "Tell a running task's agents something; each reads it before its next model call.",
    ),
    "continue": (
        "cli.tasks:continue_",
        "Continue a finished task: a new task from an attempt's diff and the conversation so far.",
    ),
    "diff": (
        "cli.diffs:diff",
        "Print an attempt's diff: the kept attempt's, else the best one left (partial too).",
    ),
    "apply": (
        "cli.diffs:apply",
        "Apply an attempt's diff to a git checkout with `git apply --3way`.",
    ),
    "up": (
        "cli.server:up",
        "Start Autan on this machine: Redis (unless AUTAN_REDIS_URL), the API and workers.",
    ),
    "worker": (
        "cli.server:worker",
        "Run a worker in this process, taking attempts from the queue until stopped.",
    ),
    "migrate": ("cli.server:migrate", "Bring the database schema up to date."),
    "gc": (
        "cli.server:gc",
        "Collect workspace garbage: old versions, blobs and snapshots nothing names any more.",
    ),
    "demo": (
        "cli.demo:demo",
        "Run a whole task on a small bundled repository with a real bug, on the scripted model.",
    ),
    "sync": (
        "cli.sync:sync",
        "Mirror a checkout to its workspace on the server, then send each change as it happens.",
    ),
    "pull": (
        "cli.sync:pull",
        "Bring a task's edits home once: onto branch autan/<task>, or into the working tree.",
    ),
    "token": (
        "cli.token:app",
        "API tokens: made, listed and revoked through the API (or --on-server).",
    ),
    "audit": (
        "cli.audit:audit",
        "Print the audit log (admins): who did what, when, from where, and the outcome.",
    ),
    "model": (
        "cli.model:app",
        "Model serving: vLLM profiles, endpoint checks, the scripted model.",
    ),
    "sandbox": ("cli.sandbox:app", "Run commands in sandboxes by hand."),
    "doctor": (
        "cli.doctor:doctor",
        "Check the connectors: each one's state, its token and repositories tried for real.",
    ),
}


class Unloaded(TyperCommand):
    """A command not imported yet: enough to list it in `autan --help`."""


def load(name: str) -> Command:
    """The command `name` names in COMMANDS, imported now."""
    module_name, _, attribute = COMMANDS[name][0].partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(target, typer.Typer):
        from cli.reported import reported

        function = target
        target = typer.Typer(add_completion=False)
        target.command(name)(reported(function))
    command = get_command(target)
    command.name = name
    return command


class LazyGroup(PlainGroup):
    """The top-level group: lists COMMANDS without importing them; imports the one that runs."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, help_text) in COMMANDS.items():
            self.add_command(Unloaded(name, help=help_text))

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        # Each line whole, wrapped to the terminal: the plain help would cut it short, and
        # break `--on-server` at its hyphen.
        width = max(map(len, COMMANDS))
        with formatter.section("Commands"):
            indent = " " * formatter.current_indent
            for name, (_, help_text) in COMMANDS.items():
                row = textwrap.fill(
                    help_text,
                    width=formatter.width,
                    initial_indent=f"{indent}{name:<{width}}  ",
                    subsequent_indent=" " * (len(indent) + width + 2),
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                formatter.write(f"{row}\n")

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, Unloaded):
            command = self.commands[name] = load(name)
        return name, command, rest


app = typer.Typer(
    cls=LazyGroup,
    name="autan",
    help="Run coding agents on your own machines. Talks to AUTAN_URL with AUTAN_TOKEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help and usage errors drawn plainly: rich and its markdown take longer to import than
    # all the rest of `autan --help`.
    rich_markup_mode=None,
)


@app.callback()
def autan() -> None:
    # No options of its own: typer makes a group only of an app with a callback or commands.
    pass


def main() -> None:
    app(prog_name="autan")
