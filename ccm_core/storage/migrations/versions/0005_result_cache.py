"""result_cache: results one app process computed, shared with the others on the same database

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "result_cache",
        sa.Column("call_digest", sa.String(length=64), nullable=False),
        sa.Column("reads", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("call_digest", name=op.f("pk_result_cache")),
    )
    with op.batch_alter_table("result_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_cache_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("result_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_cache_created_at"))
    op.drop_table("result_cache")
