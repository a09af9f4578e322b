"""a partial index of the ledger's payments by time (the Overview's payments chart)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
PAYMENTS_ONLY = "kind = 'payment'"


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_payments",
            ["project_id", "mode", "created_at"],
            unique=False,
            sqlite_where=sa.text(PAYMENTS_ONLY),
            postgresql_where=sa.text(PAYMENTS_ONLY),
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_payments")
