"""Alembic environment: runs on the connection the caller hands over, or on AUTAN_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from orchestrator.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from orchestrator.config import OrchestratorSettings
    from orchestrator.db import make_engine

    engine = make_engine(OrchestratorSettings().resolved_database_url)
    with engine.begin() as conn:
        _run(conn)
