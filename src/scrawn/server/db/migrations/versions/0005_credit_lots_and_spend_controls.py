"""credit lots (credits with an expiry), spend caps and low-balance alerts"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    s.user_rows(
        "credit_lots",
        s.big("amount", "remaining"),
        s.big("expired", default="0"),
        s.integer("expiry_count", default="0"),
        s.big("expires_at"),
        s.big("due_at", null=True),
        s.big("created_at"),
        indexes=[
            ("ix_credit_lots_due", ["due_at"]),
            ("ix_credit_lots_user", ["project_id", "mode", "user_id", "expires_at"]),
        ],
    )
    s.user_rows(
        "balance_alerts",
        s.string(32, "kind"),
        s.big("threshold", "balance", "available", "created_at"),
        s.big("delivered_at", null=True),
        indexes=[
            ("ix_balance_alerts_pending", ["delivered_at", "created_at"]),
            ("ix_balance_alerts_user", ["project_id", "mode", "user_id", "created_at"]),
        ],
    )
    s.add_columns(
        "balances",
        s.big("spend_cap", null=True),
        s.integer("spend_period", null=True),
        s.big("spent", default="0"),
        s.big("low_balance_threshold", null=True),
    )


def downgrade() -> None:
    s.drop_columns("balances", "low_balance_threshold", "spent", "spend_period", "spend_cap")
    s.drop("balance_alerts", "ix_balance_alerts_user", "ix_balance_alerts_pending")
    s.drop("credit_lots", "ix_credit_lots_user", "ix_credit_lots_due")
