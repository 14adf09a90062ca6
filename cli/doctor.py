"""`autan doctor`: each connector's state, and each configured service tried for real."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def doctor(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where autan.toml is read from [AUTAN_DATA_DIR]."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds each call to a service may take.")
    ] = 10.0,
) -> None:
    """Check the connectors: each one's state, its token and repositories tried for real.

    Prints each connector's state (configured, off, misconfigured: why), then tries each
    configured one's token and GitHub repositories; exits 1 if anything is wrong."""
    import httpx

    from integrations import connectors, doctor

    loaded = connectors.Loaded.from_env(data_dir)
    states = loaded.states()
    if loaded.routing_problem:
        typer.echo(f"Warning: {loaded.routing_problem}")
        typer.echo("  (a running Autan keeps the last good autan.toml until this is fixed)")
    typer.echo("Connectors:")
    for line in connectors.lines(states):
        typer.echo(line)
    with httpx.Client(timeout=timeout) as client:
        found = doctor.checks(loaded, client)
    if found:
        typer.echo("Checks:")
    for check in found:
        typer.echo(check.line())
    if any(s.state == "misconfigured" for s in states) or not all(c.ok for c in found):
        raise typer.Exit(1)
