"""a project's USD conversion rate for LLM prices (project currency minor units per US cent)"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    s.add_columns("projects", s.string(64, "usd_rate", null=True))


def downgrade() -> None:
    s.drop_columns("projects", "usd_rate")
