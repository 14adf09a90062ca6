"""workspace entry paths ordered byte by byte on PostgreSQL, so a folder is one index range

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite compares text byte by byte already (BINARY); PostgreSQL's default collation
    # may not, and a range over "dir/" .. "dir0" must mean "beneath dir/" on both.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "workspace_entries",
            "path",
            type_=sa.String(length=1024, collation="C"),
            existing_type=sa.String(length=1024),
            existing_nullable=False,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "workspace_entries",
            "path",
            type_=sa.String(length=1024),
            existing_type=sa.String(length=1024, collation="C"),
            existing_nullable=False,
        )
