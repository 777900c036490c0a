"""billing_export: which months' ready-to-bill lists were exported, by whom

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_export",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_month", sa.Integer(), nullable=False),
        sa.Column("exported_by", sa.String(length=64), nullable=False),
        sa.Column("exported_at", sa.DateTime(), nullable=False),
        sa.Column("patient_months", sa.Integer(), nullable=False),
        sa.Column("expected_amount", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_export")),
    )
    with op.batch_alter_table("billing_export", schema=None) as batch_op:
        batch_op.create_index("ix_billing_export_month", ["service_month"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_export", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_export_month")
    op.drop_table("billing_export")
