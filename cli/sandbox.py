"""`autan sandbox run`: one command in a fresh sandbox over a tree, exactly as an agent sees it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.plainvalues import PlainGroup, PlainValues
from sandbox import create_sandbox
from sandbox.base import ExecResult
from sandbox.config import LimitsConfig, SandboxConfig, default_root, parse_size
from sandbox.errors import SandboxError
from sandbox.network import NetworkConfig

# Exit codes when a limit, not the command, ended the run (after the command's own 0-119).
EXIT_SETUP = 120
EXIT_PIDS = 121
EXIT_MEMORY = 122
EXIT_TIMEOUT = 124

app = typer.Typer(
    cls=PlainGroup,
    help="Run commands in sandboxes by hand.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def sandbox() -> None:
    """Sandboxes: isolated copy-on-write workspaces over a tree."""


def _write(stream: Literal["stdout", "stderr"], chunk: bytes) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.buffer.write(chunk)
    out.flush()


def _verdict(result: ExecResult, timeout: float) -> tuple[int, str | None]:
    if result.timed_out:
        return EXIT_TIMEOUT, f"killed: timed out after {timeout:g}s"
    if result.oom_killed:
        return EXIT_MEMORY, "killed: out of memory (the sandbox's memory limit)"
    if result.pids_limited and result.exit_code != 0:
        return EXIT_PIDS, "failed: hit the sandbox's process limit"
    return result.exit_code & 0xFF, None


@app.command(cls=PlainValues, context_settings={"ignore_unknown_options": True})
def run(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
    base: Annotated[
        Path, typer.Option(help="Tree to start from (read-only; changes are dropped).")
    ],
    network: Annotated[
        bool, typer.Option(help="Any public host over HTTP(S): --network-policy full.")
    ] = False,
    network_policy: Annotated[
        Literal["none", "allowlist", "full"] | None,
        typer.Option(help="none (default), allowlist (the --allow hosts) or full (any public)."),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="A host the allowlist lets through (`*.example.com`: subdomains)."),
    ] = None,
    memory: Annotated[str, typer.Option(help="Memory limit, e.g. 512M, 2G.")] = "2G",
    pids: Annotated[int, typer.Option(min=1, help="Most processes at once.")] = 512,
    cpus: Annotated[float | None, typer.Option(help="CPU limit in cores.")] = None,
    disk: Annotated[str, typer.Option(help="Bytes it may write, e.g. 1G.")] = "1G",
    timeout: Annotated[float, typer.Option(help="Seconds before it is killed.")] = 600.0,
    backend: Annotated[str, typer.Option(help="bwrap (isolated) or local (NOT isolated).")] = (
        "bwrap"
    ),
    root: Annotated[Path | None, typer.Option(help="Where sandboxes keep their state.")] = None,
    show_diff: Annotated[bool, typer.Option("--diff", help="Print the diff afterwards.")] = False,
) -> None:
    """Run COMMAND in a fresh sandbox over --base, stream its output, exit with its code.

    Exit codes when a limit ended it: 124 timed out, 122 out of memory, 121 process limit,
    120 the sandbox could not be set up.
    """
    try:
        limits = LimitsConfig(
            memory=parse_size(memory),
            pids=pids,
            cpus=cpus,
            disk=parse_size(disk),
            timeout_s=timeout,
        )
        # The operator runs this command: `full` is theirs to choose.
        policy = NetworkConfig(
            mode=network_policy or ("full" if network else "allowlist" if allow else "none"),
            allow=allow or [],
        )
        config = SandboxConfig(
            backend=backend, root=root or default_root(), network=policy,
            allow_full_network=True, limits=limits,
        )  # fmt: skip
        sbx = create_sandbox(base, config)
    except (SandboxError, ValueError) as exc:
        typer.echo(f"autan sandbox: {exc}", err=True)
        raise typer.Exit(EXIT_SETUP) from exc
    try:
        result = sbx.exec(command, on_output=_write)
        if show_diff:
            sys.stdout.write(sbx.diff())
    finally:
        sbx.close()
    code, reason = _verdict(result, timeout)
    if reason:
        typer.echo(f"autan sandbox: {reason}", err=True)
    raise typer.Exit(code)
