"""workspaces: the sync daemon's mirrors, their versions and their entries

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("root", sa.String(length=4096), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("head", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("created_by", "key", name="uq_workspaces_owner_key"),
    )
    op.create_table(
        "workspace_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("manifest_hash", sa.String(length=64), nullable=True),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "number", name="uq_workspace_versions"),
    )
    op.create_table(
        "workspace_entries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=4096), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.Integer(), nullable=False),
        sa.Column("until", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("workspace_entries", schema=None) as batch_op:
        batch_op.create_index("ix_workspace_entries_path", ["workspace_id", "path"], unique=False)
        batch_op.create_index("ix_workspace_entries_live", ["workspace_id", "until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workspace_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_workspace_entries_live")
        batch_op.drop_index("ix_workspace_entries_path")
    op.drop_table("workspace_entries")
    op.drop_table("workspace_versions")
    op.drop_table("workspaces")
