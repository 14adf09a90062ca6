"""the commit a task and each attempt worked on; results of attempts that ended early

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commit", sa.String(length=64), nullable=True))
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commit", sa.String(length=64), nullable=True))
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("partial")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("commit")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("commit")
