"""quarantined events, voided events and each project's late-event window

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 15:58:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_events",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("reported_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("repriced_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "mode", "id", name=op.f("pk_quarantined_events")),
        sa.UniqueConstraint(
            "project_id",
            "mode",
            "idempotency_key",
            name=op.f("uq_quarantined_events_project_id_mode_idempotency_key"),
        ),
    )
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quarantined_events_waiting",
            ["project_id", "mode", "repriced_at", "received_at"],
            unique=False,
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voided_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("voided_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("void_reason", sa.String(length=255), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_window_days", sa.Integer(), server_default="35", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("late_window_days")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("void_reason")
        batch_op.drop_column("voided_by")
        batch_op.drop_column("voided_at")
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantined_events_waiting")
    op.drop_table("quarantined_events")
