"""workspace conflicts; entries found by the version they were born in, and by kind

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workspace_conflicts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("copy_path", sa.String(length=1100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("workspace_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_workspace_conflicts_open", ["workspace_id", "resolved_at"], unique=False
        )
    with op.batch_alter_table("workspace_entries", schema=None) as batch_op:
        batch_op.create_index("ix_workspace_entries_since", ["workspace_id", "since"], unique=False)
        # A path's live row, found by path: with (workspace_id, until) alone to choose from,
        # SQLite walked every live row of the workspace for each commit.
        batch_op.drop_index("ix_workspace_entries_path")
        batch_op.create_index(
            "ix_workspace_entries_path", ["workspace_id", "path", "until"], unique=False
        )
        # A commit checks every symlink of the workspace: found by kind, not by a walk.
        batch_op.create_index(
            "ix_workspace_entries_kind", ["workspace_id", "kind", "until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("workspace_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_workspace_entries_kind")
        batch_op.drop_index("ix_workspace_entries_since")
        batch_op.drop_index("ix_workspace_entries_path")
        batch_op.create_index("ix_workspace_entries_path", ["workspace_id", "path"], unique=False)
    with op.batch_alter_table("workspace_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_workspace_conflicts_open")
    op.drop_table("workspace_conflicts")
