"""`autan audit`: the audit log (admins), newest first, with filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from cli import render
from cli.tasks import client


def audit(
    actor: Annotated[str | None, typer.Option("--actor", help="Only this user's entries.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (task.cancel, signin, ...).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only on this task or token.")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="ok, refused, rejected or failed.")
    ] = None,
    hours: Annotated[
        float | None, typer.Option("--hours", min=0, help="Only the last N hours.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
) -> None:
    """Print the audit log (admins): who did what, when, from where, and the outcome."""
    since = datetime.now(UTC) - timedelta(hours=hours) if hours is not None else None
    query = {"actor": actor, "action": action, "target": target, "outcome": outcome,
             "since": since.isoformat() if since else None, "limit": limit}  # fmt: skip
    with client() as api:
        items = api.audit({k: v for k, v in query.items() if v is not None})
    if not items:
        render.console().print("no entries", markup=False)
        return
    table = Table("when", "who", "action", "target", "from", "outcome", box=None)
    for e in items:
        who = f"{e['actor']} ({e['token']})" if e["token"] else e["actor"]
        table.add_row(
            datetime.fromisoformat(e["at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S"), who,
            e["action"], e["target"] or "", e["address"] or "", f"{e['outcome']} {e['status']}",
        )  # fmt: skip
    render.console().print(table, soft_wrap=True)
