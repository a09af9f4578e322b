"""credit lots (credits with an expiry), spend caps and low-balance alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 21:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_lots",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expiry_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "mode", "id", name=op.f("pk_credit_lots")),
    )
    with op.batch_alter_table("credit_lots", schema=None) as batch_op:
        batch_op.create_index("ix_credit_lots_due", ["due_at"], unique=False)
        batch_op.create_index(
            "ix_credit_lots_user", ["project_id", "mode", "user_id", "expires_at"], unique=False
        )

    op.create_table(
        "balance_alerts",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "mode", "id", name=op.f("pk_balance_alerts")),
    )
    with op.batch_alter_table("balance_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_balance_alerts_pending", ["delivered_at", "created_at"], unique=False)
        batch_op.create_index(
            "ix_balance_alerts_user", ["project_id", "mode", "user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spend_cap", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("spend_period", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("spent", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("low_balance_threshold", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.drop_column("low_balance_threshold")
        batch_op.drop_column("spent")
        batch_op.drop_column("spend_period")
        batch_op.drop_column("spend_cap")

    with op.batch_alter_table("balance_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_balance_alerts_user")
        batch_op.drop_index("ix_balance_alerts_pending")
    op.drop_table("balance_alerts")

    with op.batch_alter_table("credit_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_lots_user")
        batch_op.drop_index("ix_credit_lots_due")
    op.drop_table("credit_lots")
