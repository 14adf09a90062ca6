"""task lineage: a retry's original, and a continuation's origin, starting patch and conversation

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("retry_of", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("continued_from_task", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("continued_from_attempt", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("start_patch", sa.Text(), nullable=True))
        batch.add_column(sa.Column("conversation", sa.Text(), nullable=True))
    op.create_index("ix_tasks_retry_of", "tasks", ["retry_of"])
    op.create_index("ix_tasks_continued_from_task", "tasks", ["continued_from_task"])


def downgrade() -> None:
    op.drop_index("ix_tasks_continued_from_task", table_name="tasks")
    op.drop_index("ix_tasks_retry_of", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "conversation", "start_patch", "continued_from_attempt", "continued_from_task",
            "retry_of",
        ):  # fmt: skip
            batch.drop_column(column)
