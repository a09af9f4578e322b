"""ledger_entries: the idempotency key unique where there is one (a partial unique index instead of a unique
constraint), so the usage entries ingest writes, which have none, add no index entry (on SQLite the table is
rebuilt; existing rows keep their keys, which were unique already)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
CONSTRAINT = "uq_ledger_entries_project_id_mode_idempotency_key"
INDEX = "ix_ledger_entries_key"
KEYED = "idempotency_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint(CONSTRAINT, type_="unique")
        batch_op.create_index(
            INDEX,
            ["project_id", "mode", "idempotency_key"],
            unique=True,
            sqlite_where=sa.text(KEYED),
            postgresql_where=sa.text(KEYED),
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.create_unique_constraint(CONSTRAINT, ["project_id", "mode", "idempotency_key"])
