"""model price overrides and usage records (money columns: BIGINT micro-units, see db/types.py)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 20:30:47.579055
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_price_overrides",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("input_mtok", sa.BigInteger(), nullable=True),
        sa.Column("output_mtok", sa.BigInteger(), nullable=True),
        sa.Column("cache_read_mtok", sa.BigInteger(), nullable=True),
        sa.Column("cache_write_mtok", sa.BigInteger(), nullable=True),
        sa.Column("audio_minute", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_model_price_overrides")),
    )
    with op.batch_alter_table("model_price_overrides", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_price_overrides_model", ["project_id", "model", "effective_from"], unique=False
        )

    op.create_table(
        "usage_records",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("context", sa.String(length=8), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("reservation_id", sa.String(length=36), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("usage_type", sa.String(length=16), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("audio_ms", sa.BigInteger(), nullable=False),
        sa.Column("input_cost", sa.BigInteger(), nullable=False),
        sa.Column("output_cost", sa.BigInteger(), nullable=False),
        sa.Column("cached_cost", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_cost", sa.BigInteger(), nullable=False),
        sa.Column("audio_cost", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("pricing", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "mode", "id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint(
            "project_id",
            "mode",
            "idempotency_key",
            name=op.f("uq_usage_records_project_id_mode_idempotency_key"),
        ),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index("ix_usage_records_time", ["project_id", "mode", "occurred_at"], unique=False)
        batch_op.create_index(
            "ix_usage_records_transaction", ["project_id", "mode", "transaction_id"], unique=False
        )
        batch_op.create_index(
            "ix_usage_records_user", ["project_id", "mode", "user_id", "occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_user")
        batch_op.drop_index("ix_usage_records_transaction")
        batch_op.drop_index("ix_usage_records_time")

    op.drop_table("usage_records")
    with op.batch_alter_table("model_price_overrides", schema=None) as batch_op:
        batch_op.drop_index("ix_model_price_overrides_model")

    op.drop_table("model_price_overrides")
