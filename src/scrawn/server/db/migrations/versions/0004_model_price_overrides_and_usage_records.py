"""model price overrides and usage records (money columns: BIGINT micro-units, see db/types.py)"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    s.project_rows(
        "model_price_overrides",
        s.string(255, "model"),
        s.string(64, "provider"),
        s.big("effective_from"),
        s.big("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "audio_minute", null=True),
        s.big("created_at"),
        s.big("deleted_at", null=True),
        indexes=[("ix_model_price_overrides_model", ["project_id", "model", "effective_from"])],
    )
    s.rows(
        "usage_records",
        s.idempotency(),
        s.user(),
        s.string(8, "context"),
        s.ids("transaction_id", "reservation_id", null=True),
        s.string(255, "model"),
        s.string(64, "provider"),
        s.string(16, "usage_type"),
        s.big("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "audio_ms"),
        s.big("input_cost", "output_cost", "cached_cost", "cache_write_cost", "audio_cost", "cost"),
        s.text("pricing"),
        s.string(255, "description", null=True),
        s.big("occurred_at", "created_at"),
        idempotent=True,
        indexes=[
            ("ix_usage_records_time", ["project_id", "mode", "occurred_at"]),
            ("ix_usage_records_transaction", ["project_id", "mode", "transaction_id"]),
            ("ix_usage_records_user", ["project_id", "mode", "user_id", "occurred_at"]),
        ],
    )


def downgrade() -> None:
    s.drop("usage_records", "ix_usage_records_user", "ix_usage_records_transaction", "ix_usage_records_time")
    s.drop("model_price_overrides", "ix_model_price_overrides_model")
