"""workspace owners: a workspace belongs to the user whose token registered it, so every token
of that user reaches it, and the user's team with them

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(length=32), nullable=True))
    # A workspace recorded the token that registered it: its owner is that token's user (None
    # where the token is gone, which leaves the workspace to admins).
    bind = op.get_bind()
    tokens = sa.table("api_tokens", sa.column("id", sa.String), sa.column("user_id", sa.String))
    workspaces = sa.table(
        "workspaces", sa.column("created_by", sa.String), sa.column("owner_id", sa.String)
    )
    owner = sa.select(tokens.c.user_id).where(tokens.c.id == workspaces.c.created_by)
    bind.execute(workspaces.update().values(owner_id=owner.scalar_subquery()))
    with op.batch_alter_table("workspaces") as batch:
        batch.create_foreign_key("fk_workspaces_owner", "users", ["owner_id"], ["id"])
        batch.create_index("ix_workspaces_owner_id", ["owner_id"])


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_index("ix_workspaces_owner_id")
        batch.drop_constraint("fk_workspaces_owner", type_="foreignkey")
        batch.drop_column("owner_id")
