"""initial schema"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0001"
down_revision = None


def upgrade() -> None:
    s.project_rows(
        "api_keys",
        s.string(64, "key_hash"),
        s.string(24, "display"),
        s.string(8, "role"),
        s.string(255, "name"),
        s.big("created_at"),
        s.big("expires_at", "revoked_at", "last_used_at", null=True),
        indexes=[("ix_api_keys_key_hash", ["key_hash"])],
    )
    s.create(
        "balances",
        s.scope(id_length=None),
        s.user(),
        s.big("balance", "updated_at"),
        key=("project_id", "mode", "user_id"),
    )
    s.rows(
        "events",
        s.idempotency(),
        s.string(32, "event_type"),
        s.user(),
        s.string(32, "basic_usage_type", null=True),
        s.big("reported_at", "ingested_at", "debit"),
        s.string(255, "model", "provider", null=True),
        s.integer("input_tokens", "output_tokens", "input_cache_tokens", "output_cache_tokens", null=True),
        s.big("input_debit", "output_debit", "input_cache_debit", "output_cache_debit", null=True),
        s.text("metadata", null=True),
        s.text("pricing"),
        idempotent=True,
        indexes=[
            ("ix_events_ingested", ["project_id", "mode", "ingested_at"]),
            ("ix_events_user", ["project_id", "mode", "user_id", "ingested_at"]),
        ],
    )
    s.versioned("expressions", "name", s.text("text"))
    s.user_rows(
        "ledger_entries",
        s.string(32, "kind"),
        s.big("amount"),
        s.ids("event_id", null=True),
        s.big("created_at"),
        indexes=[("ix_ledger_entries_user", ["project_id", "mode", "user_id", "created_at"])],
    )
    s.create(
        "projects",
        s.ids("id"),
        s.string(255, "name"),
        s.string(3, "currency", default="USD"),
        s.string(8, "amount_unit", default="minor"),
        s.big("created_at"),
        key=("id",),
    )
    s.versioned("tags", "key", s.big("price"))


def downgrade() -> None:
    s.drop("tags")
    s.drop("projects")
    s.drop("ledger_entries", "ix_ledger_entries_user")
    s.drop("expressions")
    s.drop("events", "ix_events_user", "ix_events_ingested")
    s.drop("balances")
    s.drop("api_keys", "ix_api_keys_key_hash")
