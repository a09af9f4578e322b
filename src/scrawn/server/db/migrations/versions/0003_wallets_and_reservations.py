"""wallets and reservations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 20:19:05.719498
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_amount", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "mode", "id", name=op.f("pk_reservations")),
        sa.UniqueConstraint(
            "project_id",
            "mode",
            "idempotency_key",
            name=op.f("uq_reservations_project_id_mode_idempotency_key"),
        ),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index("ix_reservations_active", ["status", "expires_at"], unique=False)
        batch_op.create_index(
            "ix_reservations_user", ["project_id", "mode", "user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.BigInteger(), server_default="0", nullable=False))

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reservation_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("description", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_ledger_entries_project_id_mode_idempotency_key"),
            ["project_id", "mode", "idempotency_key"],
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_ledger_entries_project_id_mode_idempotency_key"), type_="unique"
        )
        batch_op.drop_column("description")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("reservation_id")

    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.drop_column("held")

    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_reservations_user")
        batch_op.drop_index("ix_reservations_active")

    op.drop_table("reservations")
