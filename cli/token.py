"""`autan token create|revoke`: API tokens, made and revoked on the database directly."""

from __future__ import annotations

import typer

from cli import server
from cli.reported import reported

app = typer.Typer(
    help="API tokens (on the server: works on the database directly).",
    no_args_is_help=True,
    add_completion=False,
)
app.command("create")(reported(server.token_create))
app.command("revoke")(reported(server.token_revoke))
