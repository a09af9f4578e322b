"""typed events and event prices"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    s.versioned("event_prices", "event_type", s.text("expression"))
    s.add_columns(
        "events",
        s.string(128, "name", null=True),
        s.string(64, "quantity", null=True),
        s.string(255, "product_ref", null=True),
    )


def downgrade() -> None:
    s.drop_columns("events", "product_ref", "quantity", "name")
    s.drop("event_prices")
