"""`autan token create|list|revoke`: API tokens through the API (admins any user's, members
their own), or with --on-server on the database directly (the first admin token)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from cli import render, server
from cli.errors import CliError
from cli.reported import reported
from cli.tasks import client
from orchestrator.schemas import TokenCreate, TokenView

app = typer.Typer(
    help="API tokens: made, listed and revoked through the API (or --on-server).",
    no_args_is_help=True,
    add_completion=False,
)

ON_SERVER = typer.Option(
    "--on-server",
    help="Work on the server's database directly, without the API (AUTAN_DATABASE_URL).",
)


def create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Whose token (admins only); default: yours.")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="tasks:read, tasks:write, workspaces or admin; repeatable."),
    ] = None,
    expires_in_days: Annotated[
        float | None, typer.Option("--expires-in-days", min=0.001, help="Stop working after.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="With --on-server: an admin.")] = False,
    on_server: Annotated[bool, ON_SERVER] = False,
) -> None:
    """Create an API token and print it, the only time it is shown."""
    if on_server:
        if user or scope or expires_in_days:
            raise CliError(
                "--on-server makes a token of the user NAME: no --user, --scope or expiry"
            )
        server.token_create(name, admin)
        return
    if admin:
        raise CliError("--admin goes with --on-server; through the API, name --user and --scope")
    expires = None
    if expires_in_days is not None:
        expires = datetime.now(UTC) + timedelta(days=expires_in_days)
    with client() as api:
        made = api.create_token(
            TokenCreate(name=name, user=user, scopes=scope or None, expires_at=expires)
        )
    typer.echo(made.token)
    until = f", until {made.expires_at:%Y-%m-%d %H:%M} UTC" if made.expires_at else ""
    render.console(stderr=True).print(
        f"created token {made.name!r} of {made.user} ({' '.join(made.scopes)}{until}): "
        "store it now, it is not shown again",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _state(token: TokenView, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "live"


def list_(
    user: Annotated[
        str | None, typer.Option("--user", help="One user's tokens; admins see everyone's.")
    ] = None,
) -> None:
    """List tokens: yours, or (admins) everyone's; never their secrets."""
    with client() as api:
        tokens = api.tokens(user=user)
    if not tokens:
        render.console().print("no tokens", markup=False)
        return
    now = datetime.now(UTC)
    table = Table("id", "name", "user", "scopes", "state", "expires", "last used", box=None)
    for t in tokens:
        table.add_row(
            t.id, t.name, t.user, " ".join(t.scopes), _state(t, now),
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
            render.age(t.last_used_at, now) + " ago" if t.last_used_at else "never",
        )  # fmt: skip
    render.console().print(table, soft_wrap=True)


def revoke(
    token: Annotated[str, typer.Argument(help="A token's id, or the name of live tokens.")],
    on_server: Annotated[bool, ON_SERVER] = False,
) -> None:
    """Revoke a token now (by id), or every live one of yours with that name."""
    if on_server:
        server.token_revoke(token)
        return
    with client() as api:
        now = datetime.now(UTC)
        listed = api.tokens()
        chosen = [t for t in listed if t.id == token] or [
            t for t in listed if t.name == token and _state(t, now) == "live"
        ]
        if not chosen:
            raise CliError(f"no live token has the id or name {token!r}: nothing revoked")
        for t in chosen:
            api.revoke_token(t.id)
    names = ", ".join(f"{t.name!r} ({t.id})" for t in chosen)
    render.console().print(f"revoked {names}", markup=False, highlight=False, soft_wrap=True)


app.command("create")(reported(create))
app.command("list")(reported(list_))
app.command("revoke")(reported(revoke))
