"""users and roles: tokens belong to users and carry scopes and an expiry; today's tokens
become admin users' tokens, and tasks record the user who made them

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ALL_SCOPES = ["tasks:read", "tasks:write", "workspaces", "admin"]


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team", sa.String(length=255), nullable=True),
        sa.Column("service", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    _adopt_tokens(users)
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("user_id", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("scopes", existing_type=sa.JSON(), nullable=False)
        batch.create_foreign_key("fk_api_tokens_user", "users", ["user_id"], ["id"])
        batch.create_index("ix_api_tokens_user_id", ["user_id"])
        batch.drop_column("is_admin")
    op.create_index("ix_tasks_created_by", "tasks", ["created_by"])


def _adopt_tokens(users: sa.Table) -> None:
    """Every token stored so far could do everything (`is_admin` was never checked): each
    name becomes an admin user holding its tokens, with every scope, so nothing breaks."""
    bind = op.get_bind()
    tokens = sa.table(
        "api_tokens",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("user_id", sa.String),
        sa.column("scopes", sa.JSON),
    )
    tasks = sa.table("tasks", sa.column("created_by", sa.String))
    owners: dict[str, str] = {}
    rows = bind.execute(sa.select(tokens.c.id, tokens.c.name, tokens.c.created_at)).all()
    for token_id, name, created_at in rows:
        if name not in owners:
            owners[name] = uuid.uuid4().hex
            bind.execute(
                users.insert().values(
                    id=owners[name], name=name, email=None, role="admin", team=None,
                    service=False, created_at=created_at,
                )
            )  # fmt: skip
        bind.execute(
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(user_id=owners[name], scopes=ALL_SCOPES)
        )
    # A task recorded the token that made it; from now on it records that token's user.
    maker = sa.select(tokens.c.user_id).where(tokens.c.id == tasks.c.created_by).scalar_subquery()
    bind.execute(tasks.update().where(tasks.c.created_by.is_not(None)).values(created_by=maker))


def downgrade() -> None:
    op.drop_index("ix_tasks_created_by", table_name="tasks")
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.drop_index("ix_api_tokens_user_id")
        batch.drop_constraint("fk_api_tokens_user", type_="foreignkey")
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
        batch.drop_column("user_id")
    op.drop_table("users")
