"""who changed the price catalog: changed_by on tags, expressions, event prices and model price overrides"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0009"
down_revision = "0008"
TABLES = ("tags", "expressions", "event_prices", "model_price_overrides")


def upgrade() -> None:
    for table in TABLES:
        s.add_columns(table, s.ids("changed_by", null=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        s.drop_columns(table, "changed_by")
