"""`autan model ...`: serve a vLLM profile, check an endpoint, run the scripted model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from serving import profiles
from serving.errors import ServingError

app = typer.Typer(
    help="Model serving: vLLM profiles, endpoint checks, the scripted model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    typer.secho("error: " + " ".join(message.split()), fg="red", err=True)
    return typer.Exit(1)


@app.command("serve")
def serve_profile(
    profile: Annotated[str, typer.Option(help=f"One of: {', '.join(sorted(profiles.PROFILES))}.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command, run nothing.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Address vLLM binds.")] = None,
    port: Annotated[int | None, typer.Option(help="Port vLLM listens on.")] = None,
) -> None:
    """Run `vllm serve` for a known set-up (needs `pip install 'autan[serving]'`)."""
    try:
        chosen = profiles.get_profile(profile)
        argv = profiles.command(chosen, profiles.ServeConfig(host=host, port=port))
        if dry_run:
            typer.echo(profiles.shell_line(argv))
            return
        profiles.run(argv)
    except (ValueError, ServingError) as exc:
        raise _fail(str(exc)) from exc


@app.command("check")
def check(
    url: Annotated[str, typer.Argument(help="The endpoint's base URL, e.g. http://gpu1:8000/v1.")],
    model: Annotated[
        str | None, typer.Option(help="Model to test; default: the first listed.")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply.")] = 60.0,
) -> None:
    """Probe an endpoint: health, models, a tool-calling round trip, time to first token."""
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise _fail(
                f"{api_key_env} is not set: export the API key in it, or drop --api-key-env"
            )
    from serving.check import check_endpoint

    report = check_endpoint(url, model=model, api_key=api_key, timeout_s=timeout)
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@app.command("scripted")
def scripted(
    port: Annotated[int, typer.Option(help="Port to listen on.")],
    script: Annotated[
        Path, typer.Option(help="Script file (.json or .toml); see docs/scripted-model.md.")
    ],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Serve a deterministic model that answers from SCRIPT, over the OpenAI wire protocol."""
    from serving.script import load_script
    from serving.scripted import serve

    try:
        loaded = load_script(script)
    except ServingError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"scripted model {loaded.model!r} on http://{host}:{port}/v1", err=True)
    serve(loaded, host=host, port=port)


if __name__ == "__main__":
    app()
