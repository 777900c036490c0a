"""work queues: patient.next_contact_date, staff.fte, denial_work

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_contact_date", sa.Date(), nullable=True))
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fte", sa.Numeric(precision=4, scale=2, asdecimal=False), nullable=True))
    op.create_table(
        "denial_work",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_line_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('worked', 'appealed', 'written_off')", name=op.f("ck_denial_work_denial_work_status")
        ),
        sa.ForeignKeyConstraint(
            ["claim_line_id"], ["claim_line.id"], name=op.f("fk_denial_work_claim_line_id_claim_line")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_denial_work")),
        sa.UniqueConstraint("claim_line_id", name=op.f("uq_denial_work_claim_line_id")),
    )


def downgrade() -> None:
    op.drop_table("denial_work")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("fte")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("next_contact_date")
