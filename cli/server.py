"""The commands that run on the server itself: up, worker, migrate, token.

`up` and `worker` import what only they need when they run, so that the client
commands start without loading FastAPI and the Celery worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import render
from cli.config import load
from cli.errors import CliError
from orchestrator.config import OrchestratorSettings

if TYPE_CHECKING:
    from orchestrator.services import Services


def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the database, Redis, logs and admin token live [AUTAN_DATA_DIR]."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="API port [AUTAN_PORT, 8000].")
    ] = None,
    host: Annotated[str | None, typer.Option(help="API address [AUTAN_HOST, 127.0.0.1].")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes; each runs AUTAN_WORKER_CONCURRENCY attempts."),
    ] = 1,
) -> None:
    """Start Autan on this machine: Redis (unless AUTAN_REDIS_URL), the API and workers."""
    from cli.up import Supervisor
    from web.config import WebSettings

    settings = load(OrchestratorSettings, **({"data_dir": data_dir} if data_dir else {}))
    web_values = {"host": host, "port": port}
    web = load(WebSettings, **{k: v for k, v in web_values.items() if v is not None})
    supervisor = Supervisor(
        settings, host=web.host, port=web.port, workers=workers, console=render.console()
    )
    raise typer.Exit(supervisor.run())


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Attempts run at once [AUTAN_WORKER_CONCURRENCY, 2]."),
    ] = None,
) -> None:
    """Run a worker in this process, taking attempts from the queue until stopped."""
    from integrations.gitcreds import RepoCredentials
    from integrations.telemetry import init_sentry_from_env
    from orchestrator.services import Services
    from orchestrator.worker import run_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load(OrchestratorSettings)
    init_sentry_from_env()
    raise typer.Exit(
        run_worker(
            Services(settings, git_credentials=RepoCredentials.from_env()),
            concurrency=concurrency or settings.worker_concurrency,
        )
    )


def migrate() -> None:
    """Bring the database schema up to date."""
    from sqlalchemy.engine import make_url

    with _migrated() as services:
        url = make_url(services.settings.resolved_database_url)
    render.console().print(
        f"the database at {url.render_as_string(hide_password=True)} is up to date",
        markup=False,
        highlight=False,
    )


def gc(
    keep_versions: Annotated[
        int, typer.Option(min=1, help="Versions of each workspace to keep (at least 1).")
    ] = 100,
    grace_hours: Annotated[
        float,
        typer.Option(
            min=1, help="Keep anything younger, and agents' edits of tasks that ended since."
        ),
    ] = 24.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
) -> None:
    """Collect workspace garbage: old versions, blobs and snapshots nothing names any more."""
    from datetime import timedelta

    from orchestrator.models import utcnow
    from orchestrator.workspace_gc import collect

    with _migrated() as services, services.sessions.begin() as session:
        data = services.settings.data_dir
        report = collect(
            session, blobs=services.storage, snapshots_dir=data / "snapshots",
            keep_versions=keep_versions, grace=timedelta(hours=grace_hours), now=utcnow(),
            dry_run=dry_run,
        )  # fmt: skip
        if dry_run:
            session.rollback()
    verb = "would remove" if dry_run else "removed"
    render.console().print(
        f"{verb} {report.versions_pruned} version(s) ({report.entries_pruned} entry rows), "
        f"{report.blobs_removed} blob(s) ({report.bytes_freed} bytes), "
        f"{report.snapshots_removed} snapshot(s)",
        markup=False,
    )


def token_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    admin: Annotated[bool, typer.Option("--admin", help="An admin token.")] = False,
) -> None:
    """Create an API token and print it, the only time it is shown."""
    from orchestrator.models import utcnow
    from orchestrator.tokens import create_token

    _check_name(name)
    with _migrated() as services, services.sessions.begin() as session:
        raw = create_token(session, name=name, is_admin=admin, now=utcnow())
    typer.echo(raw)
    kind = "admin token" if admin else "token"
    render.console(stderr=True).print(
        f"created {kind} {name!r}: store it now, it is not shown again", markup=False
    )


def token_revoke(name: Annotated[str, typer.Argument(help="The name given at creation.")]) -> None:
    """Revoke every live token with this name."""
    from orchestrator.models import utcnow
    from orchestrator.tokens import revoke_token

    _check_name(name)
    with _migrated() as services, services.sessions.begin() as session:
        count = revoke_token(session, name=name, now=utcnow())
    if not count:
        raise CliError(f"no live token is named {name!r}: nothing revoked")
    render.console().print(
        f"revoked {count} token(s) named {name!r}", markup=False, highlight=False
    )


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > 255:
        raise typer.BadParameter("must be 1 to 255 characters", param_hint="NAME")


@contextmanager
def _migrated() -> Iterator[Services]:
    """The services over a database brought up to date first (so a fresh one works)."""
    from orchestrator.services import Services

    services = Services(load(OrchestratorSettings))
    try:
        services.migrate()
        yield services
    finally:
        services.close()
