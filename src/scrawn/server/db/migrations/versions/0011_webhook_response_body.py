"""the start of each webhook delivery's response body"""

from __future__ import annotations

from scrawn.server.db.migrations import shapes as s

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    s.add_columns("webhook_attempts", s.text("response_body", null=True))


def downgrade() -> None:
    s.drop_columns("webhook_attempts", "response_body")
